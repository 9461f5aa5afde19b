//! The enforcement ladder of SPEC section 3, transition by transition and boundary by boundary:
//! qualifying scores, cap and ceiling edges, prior thresholds, resets and overturns, timers and
//! their cascades, manual stages, exemptions, the kill switch, shadow mode, STT budgets, the
//! free-exhausted verdict, case references, the classifier gate and the evaluation interval.

use std::collections::HashSet;

use fairuse_domain::classifier::{ScriptedClassifier, UsageType, Verdict};
use fairuse_domain::engine::{
    BudgetDay, CapCheck, ClassifyGate, Ctx, Decision, EnforcementState, Event, EventKind, Outcome, SttSplit,
    VerdictRecord, admin_reset, admin_set_stage, appeal, apply_timers, apply_verdict, classify_gate, decide,
    evaluation_due, forwarding, plan_changed, record_stt, resolve_event, set_exempt, synthetic_verdict,
};
use fairuse_domain::ids::SequentialIds;
use fairuse_domain::policy::{Mode, PlanId, Policy};
use fairuse_domain::stage::Stage;
use fairuse_domain::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_domain::windows::WindowTotals;

const UID: &str = "user-1";
const RESTRICT_BUDGET_MS: i64 = 30 * MS_PER_MINUTE;

/// 2026-03-20T15:30:00.250Z: mid-day and off the second, so midnight and rounding matter.
fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-20T15:30:00.250Z").unwrap()
}

fn at(offset_ms: i64) -> Timestamp {
    t0().plus_ms(offset_ms)
}

/// The engine's cap check of totals written as a list in the policy's window order.
fn check_caps(totals: Vec<i64>, plan: PlanId, policy: &Policy) -> CapCheck {
    fairuse_domain::engine::check_caps(WindowTotals::new(policy, totals), plan, policy)
}

fn days(n: i64) -> i64 {
    n * MS_PER_DAY
}

fn hours(n: i64) -> i64 {
    n * MS_PER_HOUR
}

fn qualifying() -> Verdict {
    ScriptedClassifier::scripted(0.7, UsageType::Audiobook)
}

fn not_qualifying() -> Verdict {
    ScriptedClassifier::scripted(0.69, UsageType::Podcast)
}

fn policy_with(change: impl FnOnce(&mut Policy)) -> Policy {
    let mut policy = Policy::default();
    change(&mut policy);
    policy.validate().unwrap();
    policy
}

/// One user's state, the policy and the id source, with every event any step emitted.
struct User {
    policy: Policy,
    ids: SequentialIds,
    state: EnforcementState,
    log: Vec<Event>,
}

impl User {
    fn new() -> User {
        User::with_policy(Policy::default())
    }

    fn with_policy(policy: Policy) -> User {
        User { policy, ids: SequentialIds::new(42), state: EnforcementState::default(), log: Vec::new() }
    }

    fn ctx(&mut self, now: Timestamp) -> (Ctx<'_>, &mut EnforcementState) {
        (Ctx { policy: &self.policy, now, uid: UID, ids: &mut self.ids }, &mut self.state)
    }

    fn keep(&mut self, events: Vec<Event>) -> Vec<Event> {
        self.log.extend(events.iter().cloned());
        events
    }

    /// Applies a verdict and returns its `classified` event (timer events go to the log only).
    fn verdict(&mut self, verdict: Verdict, now: Timestamp) -> Event {
        let (mut ctx, state) = self.ctx(now);
        let events = apply_verdict(state, verdict, None, None, &mut ctx);
        let events = self.keep(events);
        let classified = events.last().unwrap().clone();
        assert_eq!(classified.kind, EventKind::Classified);
        classified
    }

    fn timers(&mut self, now: Timestamp) -> Vec<Event> {
        let (mut ctx, state) = self.ctx(now);
        let events = apply_timers(state, &mut ctx);
        self.keep(events)
    }

    fn reset(&mut self, now: Timestamp) -> Vec<Event> {
        let (mut ctx, state) = self.ctx(now);
        let events = admin_reset(state, "admin@example.com", Some("reviewed".into()), &mut ctx);
        self.keep(events)
    }

    fn set_stage(&mut self, stage: Stage, until: Option<Timestamp>, now: Timestamp) -> Vec<Event> {
        let (mut ctx, state) = self.ctx(now);
        let events = admin_set_stage(state, stage, until, "admin@example.com", None, &mut ctx).unwrap();
        self.keep(events)
    }

    fn resolve(&mut self, target: &mut Event, outcome: Outcome, now: Timestamp) -> Vec<Event> {
        let (mut ctx, state) = self.ctx(now);
        let events = resolve_event(state, target, outcome, "checked".into(), "admin@example.com", &mut ctx);
        self.keep(events)
    }

    fn plan(&mut self, name: &str, credits_exhausted: bool, now: Timestamp) -> Vec<Event> {
        let plan = self.policy.plan(name).unwrap();
        let (mut ctx, state) = self.ctx(now);
        let events = plan_changed(state, plan, credits_exhausted, &mut ctx);
        self.keep(events)
    }

    fn exempt(&mut self, exempt: bool, now: Timestamp) -> Vec<Event> {
        let (mut ctx, state) = self.ctx(now);
        let events = set_exempt(state, exempt, "admin@example.com", &mut ctx);
        self.keep(events)
    }

    fn decide(&self, totals: Vec<i64>, budget_used_ms: i64, now: Timestamp) -> Decision {
        let check = check_caps(totals, self.state.plan_id(&self.policy), &self.policy);
        decide(&self.state, UID, &check, budget_used_ms, &self.policy, now, &|_, _| None)
    }

    /// Forwards `stt_ms` of audio under the current state.
    fn record_stt(&mut self, budget: &mut BudgetDay, stt_ms: i64, ceiling_exceeded: bool, now: Timestamp) -> SttSplit {
        let fwd = forwarding(&self.state, UID, ceiling_exceeded, &self.policy);
        let (mut ctx, state) = self.ctx(now);
        let out = record_stt(state, budget, stt_ms, &fwd, &mut ctx);
        self.log.extend(out.event.iter().cloned());
        out
    }

    fn prior(&self, now: Timestamp) -> u32 {
        self.state.prior(&self.policy, now)
    }

    /// Drives the user to `stage` by qualifying verdicts an hour apart, starting at `start`;
    /// returns the instant of the last verdict.
    fn climb_to(&mut self, stage: Stage, start: Timestamp) -> Timestamp {
        let mut now = start;
        // Four verdicts reach restrict from none; a broken ladder must fail, not spin.
        for _ in 0..4 {
            if self.state.stage >= stage {
                break;
            }
            now = now.plus_ms(hours(1));
            self.verdict(qualifying(), now);
        }
        assert_eq!(self.state.stage, stage);
        now
    }
}

/// A state in `stage` with `prior` qualifying verdicts in the last hours.
fn state_with_prior(stage: Stage, prior: usize, now: Timestamp) -> EnforcementState {
    EnforcementState {
        stage,
        stage_until: Some(now.plus_ms(days(1))),
        stage_since: Some(now.minus_ms(hours(prior as i64 + 1))),
        qualifying: (0..prior)
            .map(|i| VerdictRecord {
                event_id: format!("ev-prior-{i}"),
                at: now.minus_ms(hours(i as i64 + 1)),
                overturned: false,
                usage_type: UsageType::Audiobook,
                measured: false,
            })
            .collect(),
        ..EnforcementState::default()
    }
}

fn no_usage() -> Vec<i64> {
    vec![0, 0, 0]
}

fn over_daily_cap() -> Vec<i64> {
    vec![hours(2) + 1, hours(2) + 1, hours(2) + 1]
}

fn free(policy: &Policy) -> PlanId {
    policy.plan("free").unwrap()
}

// --- qualifying scores -------------------------------------------------------------------------

#[test]
fn score_of_0_7_qualifies_and_0_69_does_not() {
    let mut user = User::new();
    let e = user.verdict(not_qualifying(), at(0));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::None, Stage::None));
    assert_eq!(user.state.stage, Stage::None);
    assert!(user.state.qualifying.is_empty());

    let e = user.verdict(qualifying(), at(1));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::None, Stage::Warning));
    assert_eq!(user.state.stage, Stage::Warning);
    assert_eq!(user.state.qualifying.len(), 1);
    assert_eq!(user.state.stage_until, Some(at(1 + days(30))));
}

#[test]
fn every_classifier_run_writes_a_classified_event_with_its_verdict() {
    let mut user = User::new();
    let e = user.verdict(not_qualifying(), at(0));
    assert_eq!(e.kind, EventKind::Classified);
    assert_eq!(e.verdict.as_ref().unwrap().misuse_score, 0.69);
    assert_eq!(user.state.last_score, Some(0.69));
    assert_eq!(user.state.last_usage_type, Some(UsageType::Podcast));
    assert_eq!(user.log.len(), 1);
}

// --- caps and the ceiling ----------------------------------------------------------------------

#[test]
fn usage_exactly_at_a_soft_cap_does_not_trigger_and_one_ms_more_does() {
    let policy = Policy::default();
    let caps = [hours(2), hours(8), hours(10)];
    for plan in ["free", "paid"] {
        let plan = policy.plan(plan).unwrap();
        assert!(check_caps(caps.to_vec(), plan, &policy).triggered.is_empty());
        for window in 0..3 {
            let mut totals = caps.to_vec();
            totals[window] += 1;
            assert_eq!(check_caps(totals, plan, &policy).triggered, vec![window]);
        }
    }
}

#[test]
fn unlimited_plan_triggers_only_above_its_own_caps() {
    let policy = Policy::default();
    let unlimited = policy.plan("unlimited").unwrap();
    let caps = [hours(4), hours(16), hours(20)];
    assert!(check_caps(caps.to_vec(), unlimited, &policy).triggered.is_empty());
    let over: Vec<i64> = caps.iter().map(|c| c + 1).collect();
    assert_eq!(check_caps(over, unlimited, &policy).triggered, vec![0, 1, 2]);
    // What is over the free caps is within the unlimited ones.
    assert!(check_caps(vec![hours(2) + 1, hours(8) + 1, hours(10) + 1], unlimited, &policy).triggered.is_empty());
}

#[test]
fn ceiling_triggers_at_exactly_30h_and_not_one_ms_below() {
    let policy = Policy::default();
    for plan in ["free", "paid", "unlimited"] {
        let plan = policy.plan(plan).unwrap();
        let below = check_caps(vec![hours(30) - 1, hours(30), hours(30)], plan, &policy);
        assert!(!below.ceiling_exceeded);
        let at_ceiling = check_caps(vec![hours(30), hours(30), hours(30)], plan, &policy);
        assert!(at_ceiling.ceiling_exceeded);
    }
}

#[test]
fn decide_refuses_stt_at_the_ceiling_even_without_a_stage() {
    let user = User::new();
    let d = user.decide(vec![hours(30) - 1, hours(30), hours(30)], 0, at(0));
    assert!(d.stt_allowed && !d.ceiling_exceeded);
    let d = user.decide(vec![hours(30), hours(30), hours(30)], 0, at(0));
    assert!(d.ceiling_exceeded);
    assert!(!d.stt_allowed && !d.sync_allowed);
    assert_eq!(d.effective_stage, Stage::None);
}

// --- prior thresholds ----------------------------------------------------------------------------

#[test]
fn warning_needs_no_prior_and_throttle_needs_two_prior_qualifying_verdicts() {
    let mut user = User::new();
    let e = user.verdict(qualifying(), at(0));
    assert_eq!(e.new_stage, Stage::Warning);
    assert_eq!(user.prior(at(hours(1))), 1);
    let e = user.verdict(qualifying(), at(hours(1)));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Warning, Stage::Warning), "prior 1 is not enough");
    assert_eq!(user.prior(at(hours(2))), 2);
    let e = user.verdict(qualifying(), at(hours(2)));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Warning, Stage::Throttle), "prior 2 is enough");
    assert_eq!(user.state.stage_until, Some(at(hours(2) + days(7))));
    assert_eq!(user.state.stage_since, Some(at(hours(2))));
}

#[test]
fn throttle_to_restrict_needs_three_prior_qualifying_verdicts() {
    let mut user = User::new();
    user.state = state_with_prior(Stage::Throttle, 2, at(0));
    let e = user.verdict(qualifying(), at(0));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Throttle, Stage::Throttle), "prior 2 is not enough");
    let e = user.verdict(qualifying(), at(1));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Throttle, Stage::Restrict), "prior 3 is enough");
    assert_eq!(user.state.stage_until, Some(at(1 + days(30))));
    assert_eq!(user.state.last_case_ref.as_ref(), Some(&e.case_ref));
}

#[test]
fn a_verdict_moves_at_most_one_stage_however_many_prior_verdicts_there_are() {
    for (from, to) in
        [(Stage::None, Stage::Warning), (Stage::Warning, Stage::Throttle), (Stage::Throttle, Stage::Restrict)]
    {
        let mut user = User::new();
        user.state = state_with_prior(from, 6, at(0));
        let e = user.verdict(qualifying(), at(0));
        assert_eq!((e.previous_stage, e.new_stage), (from, to));
        assert_eq!(user.state.stage, to);
    }
}

#[test]
fn non_qualifying_verdicts_never_count_toward_prior() {
    let mut user = User::new();
    user.verdict(qualifying(), at(0));
    for i in 1..=10 {
        let e = user.verdict(not_qualifying(), at(i * MS_PER_MINUTE));
        assert_eq!(e.new_stage, Stage::Warning);
    }
    assert_eq!(user.prior(at(hours(1))), 1);
    assert_eq!(user.verdict(qualifying(), at(hours(1))).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), at(hours(2))).new_stage, Stage::Throttle);
}

#[test]
fn prior_counts_a_verdict_from_exactly_seven_days_ago_but_not_one_ms_older() {
    let mut exact = User::new();
    exact.verdict(qualifying(), at(0));
    exact.verdict(qualifying(), at(days(1)));
    assert_eq!(exact.prior(at(days(7))), 2);
    assert_eq!(exact.verdict(qualifying(), at(days(7))).new_stage, Stage::Throttle);

    let mut older = User::new();
    older.verdict(qualifying(), at(0));
    older.verdict(qualifying(), at(days(1)));
    assert_eq!(older.prior(at(days(7) + 1)), 1);
    assert_eq!(older.verdict(qualifying(), at(days(7) + 1)).new_stage, Stage::Warning);
}

// --- reset and overturn ----------------------------------------------------------------------

#[test]
fn reset_starts_a_new_counting_period_in_which_earlier_verdicts_do_not_count() {
    let mut user = User::new();
    let last = user.climb_to(Stage::Throttle, at(0));
    let reset_at = last.plus_ms(MS_PER_MINUTE);
    let events = user.reset(reset_at);
    let reset = events.last().unwrap();
    assert_eq!(reset.kind, EventKind::AdminReset);
    assert_eq!((reset.previous_stage, reset.new_stage), (Stage::Throttle, Stage::None));
    assert_eq!(reset.actor, "admin@example.com");
    assert_eq!(user.state.stage, Stage::None);
    assert_eq!(user.state.stage_until, None);
    assert_eq!(user.state.period_start, Some(reset_at));
    assert_eq!(user.prior(reset_at), 0);

    // The three verdicts before the reset are inside the 7-day window but no longer count.
    assert_eq!(user.verdict(qualifying(), reset_at.plus_ms(1)).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), reset_at.plus_ms(2)).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), reset_at.plus_ms(3)).new_stage, Stage::Throttle);
}

#[test]
fn verdicts_recorded_before_the_period_start_do_not_count() {
    let mut state = state_with_prior(Stage::Warning, 3, at(0));
    let policy = Policy::default();
    assert_eq!(state.prior(&policy, at(0)), 3);
    state.period_start = Some(at(-hours(2) + 1));
    assert_eq!(state.prior(&policy, at(0)), 1, "only the verdict one hour ago is after the period start");
}

#[test]
fn an_overturned_verdict_stops_counting_and_an_upheld_one_keeps_counting() {
    let mut user = User::new();
    let mut first = user.verdict(qualifying(), at(0));
    let mut second = user.verdict(qualifying(), at(hours(1)));
    assert_eq!(user.prior(at(hours(2))), 2);

    let events = user.resolve(&mut second, Outcome::Overturned, at(hours(2)));
    let resolve = events.last().unwrap();
    assert_eq!(resolve.kind, EventKind::AdminResolve);
    assert_eq!(
        (resolve.previous_stage, resolve.new_stage),
        (Stage::Warning, Stage::Warning),
        "a resolution never moves the stage"
    );
    assert_eq!(second.resolution.as_ref().unwrap().outcome, Outcome::Overturned);
    assert_eq!(user.prior(at(hours(2))), 1);

    user.resolve(&mut first, Outcome::Upheld, at(hours(2)));
    assert_eq!(first.resolution.as_ref().unwrap().outcome, Outcome::Upheld);
    assert_eq!(user.prior(at(hours(2))), 1);

    // With the overturned verdict out, the next qualifying verdict has prior 1: still warning.
    assert_eq!(user.verdict(qualifying(), at(hours(3))).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), at(hours(4))).new_stage, Stage::Throttle);
}

// --- timers ------------------------------------------------------------------------------------

#[test]
fn restrict_expires_to_throttle_with_a_fresh_seven_day_timer_from_the_expiry_instant() {
    let mut user = User::new();
    let restricted_at = user.climb_to(Stage::Restrict, at(0));
    let expiry = restricted_at.plus_ms(days(30));
    assert_eq!(user.state.stage_until, Some(expiry));

    assert!(user.timers(expiry.minus_ms(1)).is_empty());
    assert_eq!(user.state.stage, Stage::Restrict);

    // Read three days after the expiry: the throttle timer runs from the expiry, not the read.
    let events = user.timers(expiry.plus_ms(days(3)));
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, EventKind::TimerExpired);
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Restrict, Stage::Throttle));
    assert_eq!(e.created_at, expiry);
    assert_eq!(e.stage_until, Some(expiry.plus_ms(days(7))));
    assert_eq!(user.state.stage, Stage::Throttle);
    assert_eq!(user.state.stage_since, Some(expiry));
    assert_eq!(user.state.stage_until, Some(expiry.plus_ms(days(7))));
}

#[test]
fn throttle_expires_to_warning_after_seven_days() {
    let mut user = User::new();
    let throttled_at = user.climb_to(Stage::Throttle, at(0));
    let expiry = throttled_at.plus_ms(days(7));
    assert!(user.timers(expiry.minus_ms(1)).is_empty());
    assert_eq!(user.state.stage, Stage::Throttle);
    let events = user.timers(expiry);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].previous_stage, events[0].new_stage), (Stage::Throttle, Stage::Warning));
    assert_eq!(events[0].created_at, expiry);
    assert_eq!(user.state.stage, Stage::Warning);
    assert_eq!(user.state.stage_until, Some(expiry.plus_ms(days(30))));
}

#[test]
fn warning_expires_to_none_after_thirty_days() {
    let mut user = User::new();
    user.verdict(qualifying(), at(0));
    let expiry = at(days(30));
    assert!(user.timers(expiry.minus_ms(1)).is_empty());
    assert_eq!(user.state.stage, Stage::Warning);
    let events = user.timers(expiry);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TimerExpired);
    assert_eq!((events[0].previous_stage, events[0].new_stage), (Stage::Warning, Stage::None));
    assert_eq!(events[0].created_at, expiry);
    assert_eq!(user.state.stage, Stage::None);
    assert_eq!(user.state.stage_until, None);
    assert!(user.timers(expiry.plus_ms(days(365))).is_empty());
}

#[test]
fn several_expiries_in_one_read_cascade_each_at_its_own_instant() {
    let mut user = User::new();
    let restricted_at = user.climb_to(Stage::Restrict, at(0));
    let to_throttle = restricted_at.plus_ms(days(30));
    let to_warning = to_throttle.plus_ms(days(7));
    let to_none = to_warning.plus_ms(days(30));

    let mut just_before = User::new();
    just_before.climb_to(Stage::Restrict, at(0));
    let events = just_before.timers(to_none.minus_ms(1));
    assert_eq!(events.len(), 2);
    assert_eq!(just_before.state.stage, Stage::Warning);
    assert_eq!(just_before.state.stage_until, Some(to_none));

    let events = user.timers(to_none.plus_ms(days(100)));
    let steps: Vec<(Stage, Stage, Timestamp)> =
        events.iter().map(|e| (e.previous_stage, e.new_stage, e.created_at)).collect();
    assert_eq!(
        steps,
        vec![
            (Stage::Restrict, Stage::Throttle, to_throttle),
            (Stage::Throttle, Stage::Warning, to_warning),
            (Stage::Warning, Stage::None, to_none),
        ]
    );
    assert!(events.iter().all(|e| e.kind == EventKind::TimerExpired && e.actor == "system"));
    assert_eq!(user.state.stage, Stage::None);
    assert_eq!(user.state.stage_until, None);
    assert_eq!(user.state.last_case_ref.as_ref(), Some(&events[2].case_ref));
}

#[test]
fn a_verdict_applies_due_timers_before_it_is_judged() {
    let mut user = User::new();
    let throttled_at = user.climb_to(Stage::Throttle, at(0));
    // Eight days later the throttle has expired; the verdict finds the user in warning with no
    // prior verdicts left in the 7-day window, so warning it stays.
    let e = user.verdict(qualifying(), throttled_at.plus_ms(days(8)));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Warning, Stage::Warning));
    let expiries: Vec<&Event> = user.log.iter().filter(|e| e.kind == EventKind::TimerExpired).collect();
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].created_at, throttled_at.plus_ms(days(7)));
}

#[test]
fn a_qualifying_verdict_restarts_the_current_stage_timer_and_a_non_qualifying_one_does_not() {
    let mut user = User::new();
    user.verdict(qualifying(), at(0));
    assert_eq!(user.state.stage_until, Some(at(days(30))));
    user.verdict(not_qualifying(), at(days(20)));
    assert_eq!(user.state.stage_until, Some(at(days(30))));
    // The first verdict is now out of the prior window: still warning, with a fresh 30-day timer.
    let e = user.verdict(qualifying(), at(days(20)));
    assert_eq!(e.new_stage, Stage::Warning);
    assert_eq!(user.state.stage_until, Some(at(days(50))));
    assert_eq!(e.stage_until, Some(at(days(50))));
    assert!(user.timers(at(days(30))).is_empty());
    assert_eq!(user.state.stage, Stage::Warning);

    let mut throttled = User::new();
    throttled.state = state_with_prior(Stage::Throttle, 1, at(0));
    throttled.verdict(qualifying(), at(0));
    assert_eq!(throttled.state.stage, Stage::Throttle);
    assert_eq!(throttled.state.stage_until, Some(at(days(7))));
}

// --- manual stages -----------------------------------------------------------------------------

#[test]
fn a_manual_stage_without_expiry_is_never_lowered_by_timers() {
    let mut user = User::new();
    let events = user.set_stage(Stage::Throttle, None, at(0));
    let e = events.last().unwrap();
    assert_eq!(e.kind, EventKind::AdminSetStage);
    assert_eq!((e.previous_stage, e.new_stage), (Stage::None, Stage::Throttle));
    assert!(user.state.manual);
    assert_eq!(user.state.stage_until, None);
    assert!(user.timers(at(days(3650))).is_empty());
    assert_eq!(user.state.stage, Stage::Throttle);
    // A qualifying verdict that does not escalate leaves the manual stage without expiry.
    user.verdict(qualifying(), at(days(3650)));
    assert_eq!(user.state.stage, Stage::Throttle);
    assert!(user.state.manual);
    assert_eq!(user.state.stage_until, None);
}

#[test]
fn escalation_still_raises_a_manual_stage() {
    let mut user = User::new();
    user.set_stage(Stage::Warning, None, at(0));
    assert_eq!(user.verdict(qualifying(), at(hours(1))).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), at(hours(2))).new_stage, Stage::Warning);
    let e = user.verdict(qualifying(), at(hours(3)));
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Warning, Stage::Throttle));
    assert!(!user.state.manual);
    assert_eq!(user.state.stage_until, Some(at(hours(3) + days(7))));
}

#[test]
fn a_manual_stage_with_expiry_steps_down_at_its_expiry() {
    let mut user = User::new();
    let until = at(days(2));
    user.set_stage(Stage::Restrict, Some(until), at(0));
    assert!(user.state.manual);
    assert_eq!(user.state.stage_until, Some(until));
    assert!(user.timers(until.minus_ms(1)).is_empty());
    let events = user.timers(until);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].previous_stage, events[0].new_stage), (Stage::Restrict, Stage::Throttle));
    assert!(!user.state.manual);
    assert_eq!(user.state.stage_until, Some(until.plus_ms(days(7))));
}

#[test]
fn admin_set_stage_with_until_in_the_past_is_an_input_error_naming_until() {
    let mut user = User::new();
    user.verdict(qualifying(), at(0));
    let before = user.state.clone();
    for until in [at(hours(1) - 1), at(hours(1))] {
        let (mut ctx, state) = user.ctx(at(hours(1)));
        let err = admin_set_stage(state, Stage::Restrict, Some(until), "admin", None, &mut ctx).unwrap_err();
        assert_eq!(err.field, "until");
        assert_eq!(user.state, before, "a refused set-stage changes nothing");
    }
    let (mut ctx, state) = user.ctx(at(hours(1)));
    assert!(admin_set_stage(state, Stage::Restrict, Some(at(hours(1) + 1)), "admin", None, &mut ctx).is_ok());
    assert_eq!(user.state.stage, Stage::Restrict);
}

// --- exemptions, kill switch, shadow mode ------------------------------------------------------

#[test]
fn an_exempt_user_is_not_classified_and_every_decision_allows_without_budget() {
    let policy = Policy::default();
    let check = check_caps(over_daily_cap(), free(&policy), &policy);
    let restricted = EnforcementState { stage: Stage::Restrict, ..EnforcementState::default() };
    assert_eq!(classify_gate(&EnforcementState::default(), &check, true, true, &policy), ClassifyGate::Exempt);

    // Exempt by the admin API.
    let mut user = User::new();
    user.state = restricted.clone();
    let events = user.exempt(true, at(0));
    assert_eq!(events.last().unwrap().kind, EventKind::AdminExempt);
    let d = user.decide(vec![hours(31), hours(31), hours(31)], hours(10), at(0));
    assert_eq!(d.stage, Stage::Restrict);
    assert_eq!(d.effective_stage, Stage::None);
    assert!(d.stt_allowed && d.sync_allowed);
    assert_eq!(d.stt_budget, None);
    assert_eq!(d.retry_after_s, None);
    assert_eq!(d.stt_model_tier, "standard");
    let events = user.exempt(false, at(1));
    assert_eq!(events.last().unwrap().kind, EventKind::AdminUnexempt);
    assert!(!user.decide(no_usage(), hours(10), at(1)).stt_allowed, "no longer exempt: the restrict budget applies");

    // Exempt by configuration.
    let mut user = User::with_policy(policy_with(|p| {
        p.switches.exempt_uids.insert(UID.to_owned());
    }));
    user.state = restricted;
    let d = user.decide(vec![hours(31), hours(31), hours(31)], hours(10), at(0));
    assert_eq!(d.effective_stage, Stage::None);
    assert!(d.stt_allowed && d.sync_allowed);
    assert_eq!(d.stt_budget, None);
}

#[test]
fn the_kill_switch_stops_detection_and_lifts_every_stage_and_budget() {
    let policy = policy_with(|p| p.switches.kill_switch = true);
    let check = check_caps(over_daily_cap(), free(&policy), &policy);
    assert_eq!(classify_gate(&EnforcementState::default(), &check, false, true, &policy), ClassifyGate::KillSwitch);

    for stage in [Stage::Warning, Stage::Throttle, Stage::Restrict] {
        let mut user = User::with_policy(policy.clone());
        user.state = EnforcementState { stage, ..EnforcementState::default() };
        let d = user.decide(vec![hours(31), hours(31), hours(31)], hours(10), at(0));
        assert_eq!(d.stage, stage);
        assert_eq!(d.effective_stage, Stage::None);
        assert!(d.stt_allowed && d.sync_allowed);
        assert_eq!(d.stt_budget, None);
        assert_eq!(d.stt_model_tier, "standard");
    }
}

/// A host reads `triggered` and `ceiling_exceeded` to block: when nothing is enforced (exempt,
/// kill switch, shadow mode, disabled) they are empty and false; the totals stay in `windows` and
/// the reasons say what would have applied and why it does not.
#[test]
fn nothing_enforced_means_nothing_triggered_and_no_ceiling_but_the_reasons_say_why() {
    let policies: Vec<(Policy, &str)> = vec![
        (policy_with(|p| p.switches.kill_switch = true), "kill switch"),
        (
            policy_with(|p| {
                p.switches.exempt_uids.insert(UID.to_owned());
            }),
            "exempt",
        ),
        (policy_with(|p| p.switches.mode = Mode::Shadow), "shadow"),
        (policy_with(|p| p.switches.enabled = false), "disabled"),
    ];
    for (policy, why) in policies {
        let user = User::with_policy(policy);
        let d = user.decide(vec![hours(31), hours(31), hours(31)], 0, at(0));
        assert!(d.triggered.is_empty(), "{why}: {:?}", d.triggered);
        assert!(!d.ceiling_exceeded, "{why}");
        assert!(d.stt_allowed && d.sync_allowed, "{why}");
        assert_eq!(d.windows["daily_ms"], hours(31), "{why}: the totals are still reported");
        assert!(d.reasons.iter().any(|r| r.contains(why)), "{why}: {:?}", d.reasons);
        assert!(d.reasons.iter().any(|r| r.contains("not enforced")), "{why}: {:?}", d.reasons);
    }
    // Enforced, the same totals trigger every window and the ceiling.
    let d = User::new().decide(vec![hours(31), hours(31), hours(31)], 0, at(0));
    assert_eq!(d.triggered, vec!["daily", "three_day", "weekly"]);
    assert!(d.ceiling_exceeded);
}

#[test]
fn a_disabled_policy_never_runs_the_classifier() {
    let policy = policy_with(|p| p.switches.enabled = false);
    let check = check_caps(over_daily_cap(), free(&policy), &policy);
    assert_eq!(classify_gate(&EnforcementState::default(), &check, false, true, &policy), ClassifyGate::Disabled);
    let mut user = User::with_policy(policy);
    user.state.stage = Stage::Restrict;
    let d = user.decide(vec![hours(31), hours(31), hours(31)], hours(10), at(0));
    assert!(d.stt_allowed && d.sync_allowed);
    assert_eq!(d.effective_stage, Stage::None);
}

#[test]
fn shadow_mode_computes_stages_and_marks_events_but_enforces_nothing() {
    let mut user = User::with_policy(policy_with(|p| p.switches.mode = Mode::Shadow));
    let restricted_at = user.climb_to(Stage::Restrict, at(0));
    assert!(user.log.iter().all(|e| e.shadow), "every event is marked shadow");
    assert_eq!(user.log.len(), 4);

    let d = user.decide(vec![hours(31), hours(31), hours(31)], hours(10), restricted_at);
    assert_eq!(d.stage, Stage::Restrict);
    assert_eq!(d.effective_stage, Stage::None);
    assert!(d.shadow);
    assert!(d.stt_allowed && d.sync_allowed);
    assert_eq!(d.stt_budget, None);
    assert_eq!(d.stt_model_tier, "standard");
    assert!(!d.ceiling_exceeded, "nothing is enforced, so no ceiling is reported as exceeded");
    assert!(d.reasons.iter().any(|r| r.contains("ceiling") && r.contains("not enforced")), "{:?}", d.reasons);

    // Nothing is held back, but running out of the restrict budget is still recorded, once.
    let mut budget = BudgetDay::default();
    let SttSplit { forwarded_ms: forwarded, held_back_ms: held, event } =
        user.record_stt(&mut budget, RESTRICT_BUDGET_MS + 5_000, true, restricted_at);
    assert_eq!((forwarded, held), (RESTRICT_BUDGET_MS + 5_000, 0));
    let event = event.unwrap();
    assert_eq!(event.kind, EventKind::BudgetExhausted);
    assert!(event.shadow);
    assert!(user.record_stt(&mut budget, 1_000, true, restricted_at).event.is_none());

    let events = user.timers(restricted_at.plus_ms(days(30)));
    assert_eq!(events.len(), 1);
    assert!(events[0].shadow);
}

#[test]
fn an_exempt_user_in_shadow_mode_is_never_budgeted_not_even_on_record() {
    let mut user = User::with_policy(policy_with(|p| p.switches.mode = Mode::Shadow));
    user.state = EnforcementState { stage: Stage::Restrict, exempt: true, ..EnforcementState::default() };
    let mut budget = BudgetDay::default();
    let SttSplit { forwarded_ms: forwarded, held_back_ms: held, event } =
        user.record_stt(&mut budget, hours(5), false, at(0));
    assert_eq!((forwarded, held), (hours(5), 0));
    assert!(event.is_none(), "exempt users are never budgeted: {event:?}");
}

#[test]
fn the_ceiling_holds_back_all_audio_and_the_kill_switch_lifts_it() {
    let mut user = User::new();
    let mut budget = BudgetDay::default();
    assert_eq!(
        user.record_stt(&mut budget, 10_000, true, at(0)),
        SttSplit { forwarded_ms: 0, held_back_ms: 10_000, event: None }
    );
    let mut lifted = User::with_policy(policy_with(|p| p.switches.kill_switch = true));
    lifted.state.stage = Stage::Restrict;
    assert_eq!(
        lifted.record_stt(&mut budget, hours(5), true, at(0)),
        SttSplit { forwarded_ms: hours(5), held_back_ms: 0, event: None }
    );
}

// --- STT budgets -------------------------------------------------------------------------------

#[test]
fn restrict_budget_allows_at_1_799_999_ms_and_is_exhausted_at_1_800_000_ms() {
    let mut user = User::new();
    user.state =
        EnforcementState { stage: Stage::Restrict, stage_until: Some(at(days(30))), ..EnforcementState::default() };

    let d = user.decide(no_usage(), 1_799_999, at(0));
    assert_eq!(d.effective_stage, Stage::Restrict);
    assert!(d.stt_allowed);
    let b = d.stt_budget.unwrap();
    assert_eq!((b.daily_limit_ms, b.used_ms, b.remaining_ms, b.exhausted), (1_800_000, 1_799_999, 1, false));
    assert_eq!(d.retry_after_s, None);

    let d = user.decide(no_usage(), 1_800_000, at(0));
    assert!(!d.stt_allowed);
    let b = d.stt_budget.clone().unwrap();
    assert!(b.exhausted);
    assert_eq!(b.remaining_ms, 0);
    assert_eq!(b.resets_at.to_rfc3339(), "2026-03-21T00:00:00Z");
    // 15:30:00.250 to midnight is 8 h 29 min 59.75 s: rounded up to whole seconds.
    assert_eq!(d.retry_after_s, Some(8 * 3600 + 29 * 60 + 60));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["stt_budget"]["resets_at"], "2026-03-21T00:00:00Z");
}

#[test]
fn the_budget_resets_at_the_next_utc_midnight_even_when_asked_at_midnight() {
    let mut user = User::new();
    user.state.stage = Stage::Restrict;
    let midnight = Timestamp::parse_rfc3339("2026-03-21T00:00:00Z").unwrap();
    let d = user.decide(no_usage(), RESTRICT_BUDGET_MS, midnight);
    assert_eq!(d.stt_budget.unwrap().resets_at.to_rfc3339(), "2026-03-22T00:00:00Z");
    let d = user.decide(no_usage(), RESTRICT_BUDGET_MS, midnight.minus_ms(1));
    assert_eq!(d.stt_budget.unwrap().resets_at.to_rfc3339(), "2026-03-21T00:00:00Z");
}

#[test]
fn throttle_decision_carries_the_economy_tier_and_a_four_hour_budget() {
    let mut user = User::new();
    user.state.stage = Stage::Throttle;
    let d = user.decide(no_usage(), hours(4) - 1, at(0));
    assert_eq!(d.stt_model_tier, "economy");
    assert!(d.stt_allowed);
    assert_eq!(d.stt_budget.as_ref().unwrap().daily_limit_ms, hours(4));
    assert!(!user.decide(no_usage(), hours(4), at(0)).stt_allowed);
    let warned =
        User { state: EnforcementState { stage: Stage::Warning, ..EnforcementState::default() }, ..User::new() };
    let d = warned.decide(no_usage(), hours(20), at(0));
    assert_eq!((d.stt_model_tier.as_str(), d.stt_budget.is_none(), d.stt_allowed), ("standard", true, true));
}

#[test]
fn record_stt_forwards_only_the_remaining_budget_and_notes_exhaustion_once_per_day() {
    let mut user = User::new();
    user.state.stage = Stage::Restrict;
    let now = at(0);
    let mut budget = BudgetDay { day: now.utc_day(), used_ms: 1_700_000, exhausted_noted: false };

    assert!(user.decide(no_usage(), budget.used_ms, now).stt_allowed);
    let SttSplit { forwarded_ms: forwarded, held_back_ms: held, event } =
        user.record_stt(&mut budget, 200_000, false, now);
    assert_eq!((forwarded, held), (100_000, 100_000));
    assert_eq!(budget.used_ms, RESTRICT_BUDGET_MS);
    let event = event.unwrap();
    assert_eq!(event.kind, EventKind::BudgetExhausted);
    let snapshot = event.budget.unwrap();
    assert_eq!((snapshot.used_ms, snapshot.limit_ms), (RESTRICT_BUDGET_MS, RESTRICT_BUDGET_MS));

    // Later the same day: the decision refuses, nothing more is forwarded and no second event.
    assert!(!user.decide(no_usage(), budget.used_ms, now.plus_ms(1)).stt_allowed);
    for later in [1, hours(8)] {
        let SttSplit { forwarded_ms: forwarded, held_back_ms: held, event } =
            user.record_stt(&mut budget, 30_000, false, now.plus_ms(later));
        assert_eq!((forwarded, held), (0, 30_000));
        assert!(event.is_none());
    }

    // The next UTC day starts at zero and may run out (and be noted) once again.
    let tomorrow = now.next_utc_midnight();
    assert!(user.decide(no_usage(), budget.today(tomorrow).used_ms, tomorrow).stt_allowed);
    let SttSplit { forwarded_ms: forwarded, event, .. } =
        user.record_stt(&mut budget, RESTRICT_BUDGET_MS - 1, false, tomorrow);
    assert_eq!(forwarded, RESTRICT_BUDGET_MS - 1);
    assert!(event.is_none(), "1 ms short of the budget is not exhausted");
    let SttSplit { forwarded_ms: forwarded, held_back_ms: held, event } =
        user.record_stt(&mut budget, 10, false, tomorrow.plus_ms(1));
    assert_eq!((forwarded, held), (1, 9));
    assert!(event.is_some());
    assert_eq!(budget.day, tomorrow.utc_day());
}

// --- the free-exhausted verdict and upgrades -----------------------------------------------------

#[test]
fn a_free_plan_without_credits_gets_the_synthetic_verdict_and_nobody_else_does() {
    let policy = Policy::default();
    let state = |plan: Option<&str>, credits_exhausted: bool| EnforcementState {
        plan: plan.map(str::to_owned),
        credits_exhausted,
        ..EnforcementState::default()
    };
    let v = synthetic_verdict(&state(Some("free"), true), &policy).unwrap();
    assert_eq!((v.misuse_score, v.usage_type), (1.0, UsageType::FreeExhausted));
    assert!(synthetic_verdict(&state(None, true), &policy).is_some(), "no plan means the default plan, free");
    assert!(synthetic_verdict(&state(Some("free"), false), &policy).is_none());
    assert!(synthetic_verdict(&state(Some("paid"), true), &policy).is_none());
    assert!(synthetic_verdict(&state(Some("unlimited"), true), &policy).is_none());
    let off = policy_with(|p| p.free_tier.synthetic_verdict = false);
    assert!(synthetic_verdict(&state(Some("free"), true), &off).is_none());
}

#[test]
fn upgrading_to_paid_clears_a_free_exhausted_stage_and_its_verdicts_stop_counting() {
    let mut user = User::new();
    assert!(user.plan("free", true, at(0)).is_empty());
    let mut now = at(0);
    for expected in [Stage::Warning, Stage::Warning, Stage::Throttle] {
        now = now.plus_ms(hours(1));
        let v = synthetic_verdict(&user.state, &user.policy).unwrap();
        assert_eq!(user.verdict(v, now).new_stage, expected);
    }
    let upgraded_at = now.plus_ms(hours(1));
    let events = user.plan("paid", false, upgraded_at);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, EventKind::StageChanged);
    assert_eq!((e.previous_stage, e.new_stage), (Stage::Throttle, Stage::None));
    assert_eq!(e.trigger.as_ref().unwrap().reason, "plan_upgrade");
    assert_eq!(user.state.stage, Stage::None);
    assert_eq!(user.state.stage_until, None);
    assert_eq!(user.state.plan.as_deref(), Some("paid"));
    assert!(user.state.qualifying.is_empty(), "the free-exhausted verdicts are gone");
    assert_eq!(user.prior(upgraded_at), 0);
    assert!(synthetic_verdict(&user.state, &user.policy).is_none());

    // The free-exhausted verdicts do not count against the paying user.
    assert_eq!(user.verdict(qualifying(), upgraded_at.plus_ms(1)).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), upgraded_at.plus_ms(2)).new_stage, Stage::Warning);
}

#[test]
fn upgrading_keeps_a_stage_that_an_abuse_verdict_also_drove() {
    let mut user = User::new();
    assert!(user.plan("free", true, at(0)).is_empty());
    let v = synthetic_verdict(&user.state, &user.policy).unwrap();
    assert_eq!(user.verdict(v, at(hours(1))).new_stage, Stage::Warning);
    assert_eq!(user.verdict(qualifying(), at(hours(2))).new_stage, Stage::Warning);
    assert!(user.plan("paid", false, at(hours(3))).is_empty(), "an audiobook verdict still stands");
    assert_eq!(user.state.stage, Stage::Warning);
    assert_eq!(user.prior(at(hours(3))), 1, "only the abuse verdict still counts");
}

#[test]
fn upgrading_does_not_clear_a_stage_earned_by_a_real_verdict() {
    let mut user = User::new();
    user.climb_to(Stage::Throttle, at(0));
    assert!(user.plan("unlimited", false, at(days(1))).is_empty());
    assert_eq!(user.state.stage, Stage::Throttle);
    assert_eq!(user.state.plan.as_deref(), Some("unlimited"));
    assert_eq!(user.prior(at(days(1))), 3);
}

// --- case references, the classifier gate, the evaluation interval -----------------------------

#[test]
fn every_event_has_a_unique_case_ref_of_the_spec_shape() {
    let mut user = User::new();
    let restricted_at = user.climb_to(Stage::Restrict, at(0));
    let mut target = user.log[0].clone();
    user.resolve(&mut target, Outcome::Upheld, restricted_at.plus_ms(1));
    user.timers(restricted_at.plus_ms(days(80)));
    user.set_stage(Stage::Throttle, None, restricted_at.plus_ms(days(81)));
    user.exempt(true, restricted_at.plus_ms(days(82)));
    user.exempt(false, restricted_at.plus_ms(days(82)));
    user.reset(restricted_at.plus_ms(days(83)));
    user.plan("free", true, restricted_at.plus_ms(days(84)));
    let v = synthetic_verdict(&user.state, &user.policy).unwrap();
    user.verdict(v, restricted_at.plus_ms(days(85)));
    user.plan("paid", false, restricted_at.plus_ms(days(86)));
    user.set_stage(Stage::Restrict, None, restricted_at.plus_ms(days(87)));
    let now = restricted_at.plus_ms(days(87));
    user.record_stt(&mut BudgetDay::default(), RESTRICT_BUDGET_MS, false, now);
    let case_ref = user.state.last_case_ref.clone().unwrap();
    let (mut ctx, state) = user.ctx(now);
    let appeal_event = appeal(state, &case_ref, "I was listening to my own meetings", &mut ctx).unwrap();
    user.log.push(appeal_event);

    let kinds: HashSet<&str> = user.log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.len(), 10, "every kind of event was produced: {kinds:?}");
    let mut refs = HashSet::new();
    let mut ids = HashSet::new();
    for e in &user.log {
        let r = e.case_ref.as_str();
        let shaped = r.len() == 15
            && r.starts_with("FU-")
            && r[3..].bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        assert!(shaped, "{r} does not match FU-[0-9A-F]{{12}}");
        assert!(refs.insert(r.to_owned()), "case_ref {r} repeats");
        assert!(ids.insert(e.event_id.clone()), "event_id {} repeats", e.event_id);
        assert_eq!(e.uid, UID);
    }
}

#[test]
fn classify_gate_refuses_users_in_restrict_and_while_cooling_down() {
    let policy = Policy::default();
    let over = check_caps(over_daily_cap(), free(&policy), &policy);
    let within = check_caps(vec![hours(2), hours(8), hours(10)], free(&policy), &policy);
    let user_in = |stage| EnforcementState { stage, ..EnforcementState::default() };

    assert_eq!(classify_gate(&user_in(Stage::Restrict), &over, false, true, &policy), ClassifyGate::InRestrict);
    assert_eq!(classify_gate(&user_in(Stage::Throttle), &over, false, false, &policy), ClassifyGate::CoolingDown);
    assert_eq!(classify_gate(&user_in(Stage::Throttle), &over, false, true, &policy), ClassifyGate::Run);
    assert_eq!(classify_gate(&user_in(Stage::None), &over, false, true, &policy), ClassifyGate::Run);
    assert_eq!(classify_gate(&user_in(Stage::None), &within, false, true, &policy), ClassifyGate::NoCapTriggered);
}

#[test]
fn evaluation_is_due_exactly_one_check_interval_after_the_last_and_not_1_ms_before() {
    let policy = Policy::default();
    let last = at(0);
    assert!(evaluation_due(None, &policy, last));
    assert!(!evaluation_due(Some(last), &policy, last));
    assert!(!evaluation_due(Some(last), &policy, last.plus_ms(299_999)));
    assert!(evaluation_due(Some(last), &policy, last.plus_ms(300_000)));
}
