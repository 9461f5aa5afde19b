//! What happens after usage is recorded, as pure steps that say what to do next: whether a report
//! needs judging and when a judgement falls due, which conversations the classifier reads, where
//! a verdict comes from and whether it may count, how a job's verdict lands on the ladder, and how
//! much audio the gateway may forward before it asks again.
//!
//! The service, the gateway and the simulator perform only the I/O around these calls (locks,
//! queues, stores, the classifier backend), so a backtest is what production does. The order is:
//!
//! 1. [`may_trigger`] on the totals the meter returned with the report: false for nearly every
//!    report, which then needs nothing else (no plan lookup, no lock, no state read).
//! 2. [`after_report`] with the exact caps of the user's plan: under them nothing happens; over them
//!    the user is judged now if their evaluation slot (one per check interval) is free, and
//!    otherwise a due evaluation is recorded for `due_at`, so a crossing is judged within the check
//!    interval even when no later report arrives ([`due_evaluation_job`]).
//! 3. The gate ([`engine::classify_gate`]) and the classifier lock (the cooldown), then a job.
//! 4. [`job_still_wanted`], [`select_conversations`], [`judgement`] (a verdict given without a
//!    model call, or ask), [`admit`] (evidence hygiene for every backend), [`apply_job_verdict`],
//!    then [`lock_hold`]: the lock taken for the whole cooldown is shortened to the re-check when
//!    the verdict does not qualify.
//!
//! No I/O and no clock here: every instant is an argument.

use std::collections::BTreeSet;

use crate::classifier::{ClassifierInput, Conversation, Evidence, EvidenceKind, UsageType, Verdict};
use crate::engine::{self, CapCheck, ClassifyGate, Ctx, Decision, EnforcementState, Event, Trigger};
use crate::error::InputError;
use crate::policy::Policy;
use crate::sessions::StreamSession;
use crate::store::Job;
use crate::time::{MS_PER_DAY, MS_PER_MINUTE, Timestamp};
use crate::windows::WindowTotals;

/// The most conversations of the lookback one classifier run reads: the most recently started,
/// so many short conversations early in the week cannot push later ones out of view.
pub const CLASSIFIER_CONVERSATIONS: usize = 200;
/// The most gateway stream sessions of the lookback one classifier run reads (the most recently
/// started): a reconnect every ten minutes for the whole week.
pub const CLASSIFIER_STREAM_SESSIONS: usize = 1_000;

/// The stream sessions a classifier run reads (`ConversationStore::stream_sessions_since`): those
/// updated at or after `from`, oldest started first (ties by session id), and over `limit` the
/// most recently started, so early streams cannot push the recent ones out of view.
pub fn select_stream_sessions(
    sessions: impl IntoIterator<Item = StreamSession>,
    from: Timestamp,
    limit: usize,
) -> Vec<StreamSession> {
    let mut out: Vec<StreamSession> = sessions.into_iter().filter(|s| s.updated_at >= from).collect();
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.session_id.cmp(&b.session_id)));
    out.drain(..out.len().saturating_sub(limit));
    out
}

/// Whether the totals may be over a cap of *any* plan, or at the ceiling. Reports for which this
/// is false are under every cap of every plan, so they need no plan lookup and use no evaluation
/// slot: the check interval limits how often a user is judged, not whether a crossing is seen.
pub fn may_trigger(totals: &WindowTotals, policy: &Policy) -> bool {
    let soft = totals.iter().zip(policy.lowest_caps()).any(|(total, cap)| cap.is_some_and(|c| total > c));
    soft || totals.at_ceiling(policy)
}

/// What a recorded report asks for, given the caps of the user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReport {
    /// No window over its cap and the ceiling not reached: nothing to judge.
    UnderCaps,
    /// Over a cap or at the ceiling: judge now if the user's evaluation slot is free; if it is
    /// taken (the user was judged less than a check interval ago, before this report), an
    /// evaluation falls due at `due_at`, whether or not another report comes.
    Judge { due_at: Timestamp },
}

pub fn after_report(check: &CapCheck, policy: &Policy, now: Timestamp) -> AfterReport {
    if check.triggered.is_empty() && !check.ceiling_exceeded {
        AfterReport::UnderCaps
    } else {
        AfterReport::Judge { due_at: now.plus_ms(policy.metering.check_interval.ms()) }
    }
}

/// The id prefix of due-evaluation jobs. They share the durable job queue with classifier jobs
/// (whose ids are UUIDs), so they are claimed exactly once across replicas and survive restarts;
/// the id is the user's, so a user has at most one due evaluation pending (a second enqueue of
/// the same id is a no-op).
pub const DUE_EVALUATION_PREFIX: &str = "evaluate:";

/// The job that judges `uid` once it is due (enqueue it with `due_at` as its due time). When it
/// runs, it takes the evaluation slot like a report would: if the slot is taken, the user was
/// judged after the report that recorded this job, and there is nothing left to do (a
/// re-judgement tries once more: [`retry_due_evaluation`]).
pub fn due_evaluation_job(uid: &str, session_id: Option<String>, now: Timestamp) -> Job {
    Job {
        id: format!("{DUE_EVALUATION_PREFIX}{uid}"),
        uid: uid.to_owned(),
        lock_token: String::new(),
        session_id,
        attempts: 0,
        created_at: now,
    }
}

/// The due evaluation [`rejudge_at`] asks for: a job of its own per user (`/` is in no uid, so
/// its id is no other user's), so a pending due evaluation, or the one running when the cooldown
/// is found, does not swallow it.
pub fn rejudge_job(uid: &str, session_id: Option<String>, now: Timestamp) -> Job {
    Job { id: format!("{DUE_EVALUATION_PREFIX}{uid}{REJUDGE_SUFFIX}"), ..due_evaluation_job(uid, session_id, now) }
}

const REJUDGE_SUFFIX: &str = "/rejudge";

/// What a due evaluation does when it finds the user's evaluation slot taken: `Some(at)` to run
/// again at `at`, `None` when there is nothing left to do.
///
/// A due evaluation queued for a crossing is done: the slot was taken after the report that
/// queued it, by an evaluation that read the same windows or later ones. A re-judgement
/// ([`rejudge_job`]) is not: the slot may have been taken by a report's evaluation a minute
/// before the cooldown ended, which found the user cooling down and judged nothing. If that was
/// the user's last report (a listener who stops for the night as the cooldown runs out), the
/// ladder would wait for their next report, hours later. So it tries once more when that slot
/// has certainly ended (one check interval on); a slot taken then was taken after the cooldown,
/// by an evaluation that judged.
pub fn retry_due_evaluation(job: &Job, policy: &Policy, now: Timestamp) -> Option<Timestamp> {
    (job.is_rejudge() && job.attempts == 0).then(|| now.plus_ms(policy.metering.check_interval.ms()))
}

impl Job {
    /// True for the jobs [`due_evaluation_job`] and [`rejudge_job`] make; every other job runs the classifier.
    pub fn is_due_evaluation(&self) -> bool {
        self.id.starts_with(DUE_EVALUATION_PREFIX)
    }

    /// True for the jobs [`rejudge_job`] makes.
    pub fn is_rejudge(&self) -> bool {
        self.is_due_evaluation() && self.id.ends_with(REJUDGE_SUFFIX)
    }
}

/// Conversation metadata as the host may send it: well-formed, in the past (up to the policy's
/// clock skew) and inside the retention. A conversation dated in the future would otherwise sit
/// in every lookback to come, as evidence nobody can contest.
pub fn validate_conversation(c: &Conversation, policy: &Policy, now: Timestamp) -> Result<(), InputError> {
    let id = &c.conversation_id;
    if id.is_empty() || id.len() > 128 {
        return Err(InputError::new("conversation_id", "must be 1-128 characters"));
    }
    if c.title.chars().count() > 500 {
        return Err(InputError::new("title", "must be at most 500 characters"));
    }
    if c.category.chars().count() > 100 {
        return Err(InputError::new("category", "must be at most 100 characters"));
    }
    if c.source.chars().count() > 100 {
        return Err(InputError::new("source", "must be at most 100 characters"));
    }
    if c.finished_at < c.started_at {
        return Err(InputError::new("finished_at", "must not be before started_at"));
    }
    if c.finished_at.millis() - c.started_at.millis() > 7 * MS_PER_DAY {
        return Err(InputError::new("finished_at", "a conversation longer than 7 days is not plausible"));
    }
    let skew = policy.metering.max_future_skew;
    if c.finished_at.millis() > now.millis().saturating_add(skew.ms()) {
        return Err(InputError::new(
            "finished_at",
            format!("{} is in the future (more than {} after now, {now})", c.finished_at, skew.human()),
        ));
    }
    let retention = policy.metering.retention;
    if c.started_at.millis() < now.millis().saturating_sub(retention.ms()) {
        return Err(InputError::new(
            "started_at",
            format!("{} is older than the retention period ({})", c.started_at, retention.human()),
        ));
    }
    Ok(())
}

/// The conversations one classifier run reads, from whatever the store returned: started in the
/// lookback, finished by now (plus the clock skew; older stores may hold future-dated ones), at
/// most [`CLASSIFIER_CONVERSATIONS`] of the most recently started, oldest first, each trimmed
/// for the classifier.
pub fn select_conversations(
    mut conversations: Vec<Conversation>,
    policy: &Policy,
    now: Timestamp,
) -> Vec<Conversation> {
    let from = now.minus_ms(policy.classifier.lookback.ms());
    let latest_end = now.plus_ms(policy.metering.max_future_skew.ms());
    conversations.retain(|c| c.started_at >= from && c.finished_at <= latest_end);
    conversations
        .sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.conversation_id.cmp(&b.conversation_id)));
    conversations.dedup_by(|a, b| a.conversation_id == b.conversation_id);
    conversations.drain(..conversations.len().saturating_sub(CLASSIFIER_CONVERSATIONS));
    conversations.iter().map(Conversation::for_classifier).collect()
}

/// Where a run's verdict comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Given without asking the classifier: the synthetic free-tier verdict, or the no-evidence
    /// verdict when the lookback holds no conversation a verdict could cite.
    Given(Verdict),
    /// Ask the classifier with this input, then pass its answer through [`admit`].
    Ask,
}

/// The synthetic free-tier verdict first (no model call, SPEC section 3); then, with no
/// conversation in the lookback, the no-evidence verdict (Omi returns the same 0.0 default
/// without calling the model): a verdict must cite what it judged, and there is nothing to cite.
pub fn judgement(state: &EnforcementState, input: &ClassifierInput, policy: &Policy) -> Judgement {
    if let Some(v) = engine::synthetic_verdict(state, policy) {
        return Judgement::Given(v);
    }
    if let Some(v) = duplicate_audio_verdict(input, policy) {
        return Judgement::Given(v);
    }
    if input.conversations.is_empty() {
        return Judgement::Given(Verdict::no_evidence());
    }
    Judgement::Ask
}

impl Verdict {
    /// The verdict of a run with no conversation in the lookback: not misuse, nothing cited.
    pub fn no_evidence() -> Verdict {
        Verdict {
            misuse_score: 0.0,
            usage_type: UsageType::None,
            confidence: 0.0,
            evidence: Vec::new(),
            model: "none".into(),
            prompt_version: "no-conversations".into(),
            recipes: Vec::new(),
            demoted: None,
        }
    }
}

/// The score of a verdict that duplicate audio qualifies on its own.
pub const DUPLICATE_AUDIO_SCORE: f64 = 0.9;

/// The verdict of the gateway's fingerprints, for every backend and without a model call: when
/// the sessions of the lookback repeat at least `[fingerprint] qualify_minutes` of audio heard at
/// least five minutes earlier (the user's own or other users'; simultaneous hearings never count),
/// and that is at least `qualify_share` of the user's speech in the lookback, the usage is recorded
/// media whatever the titles say: live conversation never happens twice. The sessions that repeat
/// most are cited (kind `duplicate_audio`) with the earlier sessions they repeat.
pub fn duplicate_audio_verdict(input: &ClassifierInput, policy: &Policy) -> Option<Verdict> {
    let f = &policy.fingerprint;
    let repeated: i64 = input.sessions.iter().map(StreamSession::duplicate_ms).fold(0, i64::saturating_add);
    let speech = input.shape.speech_ms.max(1);
    let share = repeated as f64 / speech as f64;
    if repeated < i64::from(f.qualify_minutes) * MS_PER_MINUTE || share < f.qualify_share {
        return None;
    }
    let mut cited: Vec<&StreamSession> = input.sessions.iter().filter(|s| s.duplicate_ms() > 0).collect();
    cited.sort_by(|a, b| b.duplicate_ms().cmp(&a.duplicate_ms()).then_with(|| a.session_id.cmp(&b.session_id)));
    let minutes = |ms: i64| ms as f64 / MS_PER_MINUTE as f64;
    let evidence = cited
        .into_iter()
        .take(crate::classifier::MAX_EVIDENCE)
        .map(|s| Evidence {
            conversation_id: s.session_id.clone(),
            title: format!("stream of {}", s.started_at),
            reason: format!(
                "{:.0} of its {:.0} speech minutes repeat audio heard earlier: {:.0} min by this account, {:.0} min \
                 by other accounts, at least five minutes apart (acoustic fingerprints)",
                minutes(s.duplicate_ms()),
                minutes(s.speech_ms),
                minutes(s.duplicate_own_ms),
                minutes(s.duplicate_other_ms)
            ),
            kind: EvidenceKind::DuplicateAudio,
            matches: s.duplicate_of.clone(),
        })
        .collect();
    Some(Verdict {
        misuse_score: DUPLICATE_AUDIO_SCORE,
        usage_type: UsageType::Prerecorded,
        confidence: share.min(1.0),
        evidence,
        model: "fingerprint".into(),
        prompt_version: "duplicate-audio-v1".into(),
        recipes: Vec::new(),
        demoted: None,
    })
}

/// Evidence hygiene, for every backend: evidence citing a conversation the classifier was not
/// shown is dropped (a model may invent ids), and a verdict at or over the qualifying score that
/// cites none of the conversations it was shown is lowered just below the line, with the reason
/// kept in `demoted` for the reviewer. A verdict that moves someone up the ladder always points at
/// something the user can see and contest.
pub fn admit(mut verdict: Verdict, input: &ClassifierInput, policy: &Policy) -> Verdict {
    let shown: BTreeSet<&str> = input.conversations.iter().map(|c| c.conversation_id.as_str()).collect();
    let repeating: BTreeSet<&str> =
        input.sessions.iter().filter(|s| s.duplicate_ms() > 0).map(|s| s.session_id.as_str()).collect();
    verdict.evidence.retain(|e| match e.kind {
        EvidenceKind::Conversation => shown.contains(e.conversation_id.as_str()),
        EvidenceKind::DuplicateAudio => repeating.contains(e.conversation_id.as_str()),
    });
    let line = policy.classifier.qualify_score;
    if verdict.misuse_score >= line && verdict.evidence.is_empty() {
        let below = ((line * 1000.0).round() - 10.0).max(0.0) / 1000.0;
        verdict.demoted = Some(format!(
            "score {:.3} cited none of the {} conversations it was shown; lowered to {below:.3}, under the qualifying {line}",
            verdict.misuse_score,
            shown.len()
        ));
        verdict.misuse_score = below.min(verdict.misuse_score);
    }
    verdict
}

/// Whether a queued classifier job should still run, as of now: the kill switch, an exemption or
/// `restrict` may have come since it was queued, and a job already applied (by another worker)
/// is not applied twice. A job that is no longer wanted is completed without a run or an event.
pub fn job_still_wanted(
    state: &EnforcementState,
    check: &CapCheck,
    exempt: bool,
    job_id: &str,
    policy: &Policy,
) -> bool {
    let gate = engine::classify_gate(state, check, exempt, true, policy);
    let stale = matches!(
        gate,
        ClassifyGate::Disabled | ClassifyGate::KillSwitch | ClassifyGate::Exempt | ClassifyGate::InRestrict
    );
    !stale && state.last_job_id.as_deref() != Some(job_id)
}

/// A job's verdict on the ladder: applied once per job, and never into a counting period that
/// started (an admin reset) after the job was queued.
pub fn apply_job_verdict(
    state: &mut EnforcementState,
    job: &Job,
    verdict: Verdict,
    trigger: Trigger,
    ctx: &mut Ctx<'_>,
) -> Vec<Event> {
    if state.last_job_id.as_deref() == Some(job.id.as_str()) || state.period_start.is_some_and(|p| p > job.created_at) {
        return Vec::new();
    }
    state.last_job_id = Some(job.id.clone());
    engine::apply_verdict(state, verdict, Some(trigger), job.session_id.clone(), ctx)
}

/// How long, from the verdict, the classifier lock stays held: after a qualifying verdict the
/// cooldown, or the shorter fingerprint cooldown when the verdict was measured
/// ([`crate::policy::Policy::hold_after_qualifying`]); the re-check after one that does not
/// qualify; the shorter close re-check after one that missed the line narrowly
/// ([`crate::policy::ClassifierPolicy::hold_after_score`]), and the close re-check too when the
/// user's sessions already repeat earlier audio but not yet enough to qualify: duplicate audio
/// only grows while the user keeps playing, and live talk has none, so honest users keep the full
/// re-check.
/// The lock is taken for the whole cooldown before the run, so a run that fails or takes long is
/// never repeated by another replica meanwhile.
/// `repeating` is [`repeats_earlier_audio`] of the run's input.
pub fn lock_hold(verdict: &Verdict, repeating: bool, policy: &Policy) -> crate::time::DurationMs {
    let c = &policy.classifier;
    if verdict.misuse_score >= c.qualify_score {
        return policy.hold_after_qualifying(verdict.is_measured());
    }
    let hold = c.hold_after_score(verdict.misuse_score);
    if !repeating {
        return hold;
    }
    let close = c.recheck_close.unwrap_or(crate::policy::DEFAULT_RECHECK_CLOSE);
    if close.ms() < hold.ms() { close } else { hold }
}

/// How long after the cooldown ends [`rejudge_at`] falls due: every replica's clock, and a lock
/// store that keeps its own time, agree by then that the lock is free.
pub const REJUDGE_GRACE_MS: i64 = 60_000;

/// When a user on the ladder is judged again though no further report comes: the end of the
/// cooldown after their latest qualifying verdict (the fingerprint cooldown after a measured one;
/// plus [`REJUDGE_GRACE_MS`]), if that is still ahead. The caller asks this when a report over a
/// cap finds the user cooling down, and queues a due evaluation for the instant; when it runs,
/// the usual gate decides (a cap still triggered, not restricted, not exempt).
///
/// Without it the ladder moved only when reports came after each cooldown, so a user who plays
/// media all night but not by day took a night per verdict (four nights to `restrict`) instead of
/// the cooldowns the policy states. Users with no qualifying verdict are not affected: they are
/// judged when they report, as before.
pub fn rejudge_at(state: &EnforcementState, policy: &Policy, now: Timestamp) -> Option<Timestamp> {
    let last = state.qualifying.iter().filter(|r| !r.overturned).max_by_key(|r| r.at)?;
    let at = last.at.plus_ms(policy.hold_after_qualifying(last.measured).ms() + REJUDGE_GRACE_MS);
    (at > now).then_some(at)
}

/// Whether any session of the input repeats earlier audio (see [`lock_hold`]).
pub fn repeats_earlier_audio(input: &ClassifierInput) -> bool {
    input.sessions.iter().any(|s| s.duplicate_ms() > 0)
}

/// What the gateway does with the next slice of a stream's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Forward this many more ms of audio, then report and ask again.
    Grant { ms: i64 },
    /// Forward nothing for now (the store could not vouch for the budget); ask again shortly.
    Hold,
    /// STT is not allowed: stop forwarding for the rest of the stream and tell the client.
    Stop,
}

/// A decision as the service answers it: the domain's [`Decision`] and whether the stores could
/// vouch for it. A transport flag for the gateway, kept out of [`Decision`] so that it never
/// reaches the API or a stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionWithHealth {
    pub decision: Decision,
    /// `decision.stt_allowed` is false only because the budget store could not be read (fail
    /// closed): a transient denial, not a spent budget.
    pub budget_unavailable: bool,
}

/// The gateway's lease decision. `decision` is `None` when the forwarded audio could not be
/// reported or the decision could not be read: a stream with a budget (`budgeted`, from the last
/// decision) is held under `budget.fail_closed_when_store_down`, anyone else gets one more slice
/// (fail open: no budget to overshoot). A decision denied only because the budget store did not
/// answer holds rather than stops. A granted lease never exceeds the remaining budget (at least
/// 1 ms, so the stream reports and asks again).
pub fn lease(decision: Option<&DecisionWithHealth>, budgeted: bool, policy: &Policy) -> Lease {
    let slice_ms = policy.budget.slice.ms().max(1);
    match decision {
        None if budgeted && policy.budget.fail_closed_when_store_down => Lease::Hold,
        None => Lease::Grant { ms: slice_ms },
        Some(h) if !h.decision.stt_allowed && h.budget_unavailable => Lease::Hold,
        Some(DecisionWithHealth { decision: d, .. }) if d.stt_allowed => {
            Lease::Grant { ms: d.stt_budget.as_ref().map_or(slice_ms, |b| slice_ms.min(b.remaining_ms.max(1))) }
        }
        Some(_) => Lease::Stop,
    }
}

/// Speech that may still be added before any window of `caps` goes over its cap or the ceiling is
/// reached, from exact totals: totals only fall as time passes, so until that much more speech is
/// recorded, [`may_trigger`]'s answer for these caps is false without reading the windows. Negative
/// when something already triggers.
pub fn headroom(totals: &WindowTotals, caps: &[Option<i64>], policy: &Policy) -> i64 {
    let soft = totals.iter().zip(caps).filter_map(|(t, c)| c.map(|c| c - t)).min().unwrap_or(i64::MAX);
    let ceiling = totals.ceiling_window(policy).map_or(i64::MAX, |t| policy.ceiling_headroom(t).saturating_sub(1));
    soft.min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::UsageShape;
    use crate::prints::AudioMatch;
    use crate::stage::Stage;
    use crate::time::MS_PER_HOUR;

    fn session(id: &str, speech_min: i64, own_min: i64, other_min: i64) -> StreamSession {
        let mut s = StreamSession::open(id, Timestamp::from_millis(MS_PER_HOUR));
        s.speech_ms = speech_min * MS_PER_MINUTE;
        s.duration_ms = s.speech_ms;
        s.duplicate_own_ms = own_min * MS_PER_MINUTE;
        s.duplicate_other_ms = other_min * MS_PER_MINUTE;
        if other_min > 0 {
            s.duplicate_of = vec![AudioMatch {
                session_id: "theirs".into(),
                uid: "someone-else".into(),
                own: false,
                shift_ms: -MS_PER_HOUR,
                shared_ms: other_min * MS_PER_MINUTE,
            }];
        }
        s
    }

    fn input(speech_min: i64, sessions: Vec<StreamSession>) -> ClassifierInput {
        ClassifierInput {
            uid: "u".into(),
            plan: "free".into(),
            conversations: Vec::new(),
            shape: UsageShape { speech_ms: speech_min * MS_PER_MINUTE, ..UsageShape::default() },
            window_totals_ms: Vec::new(),
            sessions,
        }
    }

    #[test]
    fn duplicate_audio_over_the_minutes_and_the_share_qualifies_without_a_model_or_conversations() {
        let policy = Policy::default();
        let state = EnforcementState::default();
        // 300 min of speech, 90 repeating others' audio and 20 the user's own: 110 min, 37 %.
        let i = input(300, vec![session("s1", 150, 0, 90), session("s2", 150, 20, 0)]);
        let Judgement::Given(v) = judgement(&state, &i, &policy) else { panic!("expected a given verdict") };
        assert!(v.misuse_score >= policy.classifier.qualify_score);
        assert_eq!(v.usage_type, UsageType::Prerecorded);
        assert_eq!(v.evidence.len(), 2);
        assert!(v.evidence.iter().all(|e| e.kind == EvidenceKind::DuplicateAudio));
        assert_eq!(v.evidence[0].conversation_id, "s1", "the session repeating most first");
        assert_eq!(v.evidence[0].matches[0].uid, "someone-else", "admins see whose audio it repeats");
        assert!(v.evidence[0].reason.contains("90 of its 150 speech minutes"), "{}", v.evidence[0].reason);
        // Admitted as it is: it cites sessions the run was shown.
        assert_eq!(admit(v.clone(), &i, &policy), v);
    }

    #[test]
    fn too_little_or_too_small_a_share_of_duplicate_audio_is_left_to_the_classifier() {
        let policy = Policy::default();
        let state = EnforcementState::default();
        // 59 minutes: under the minutes.
        let few = input(100, vec![session("s1", 100, 0, 59)]);
        assert_eq!(judgement(&state, &few, &policy), Judgement::Given(Verdict::no_evidence()));
        // 70 minutes of 600: under the share.
        let diluted = input(600, vec![session("s1", 600, 0, 70)]);
        assert_eq!(duplicate_audio_verdict(&diluted, &policy), None);
        // Never more than a session's speech, however the two kinds overlap.
        assert_eq!(session("s", 10, 30, 30).duplicate_ms(), 10 * MS_PER_MINUTE);
    }

    #[test]
    fn duplicate_audio_evidence_must_cite_a_session_that_repeats() {
        let policy = Policy::default();
        let i = input(300, vec![session("s1", 150, 0, 90), session("quiet", 150, 0, 0)]);
        let cite = |id: &str| Evidence {
            kind: EvidenceKind::DuplicateAudio,
            ..Evidence::conversation(id, "stream", "repeats")
        };
        let verdict = Verdict {
            misuse_score: 0.95,
            usage_type: UsageType::Prerecorded,
            confidence: 0.9,
            evidence: vec![cite("quiet"), cite("invented"), cite("s1")],
            model: "m".into(),
            prompt_version: "p".into(),
            recipes: Vec::new(),
            demoted: None,
        };
        let kept = admit(verdict.clone(), &i, &policy);
        assert_eq!(kept.evidence, vec![cite("s1")]);
        assert_eq!(kept.misuse_score, 0.95);
        let none = admit(Verdict { evidence: vec![cite("quiet")], ..verdict }, &i, &policy);
        assert!(none.misuse_score < policy.classifier.qualify_score, "nothing left to cite: demoted");
    }

    #[test]
    fn a_user_on_the_ladder_is_judged_again_when_the_cooldown_after_their_last_qualifying_verdict_ends() {
        use crate::engine::VerdictRecord;
        let policy = Policy::default();
        let record = |hour: i64, overturned: bool| VerdictRecord {
            event_id: format!("e{hour}"),
            at: Timestamp::from_millis(hour * MS_PER_HOUR),
            overturned,
            usage_type: UsageType::Audiobook,
            measured: false,
        };
        let mut state = EnforcementState::default();
        let now = Timestamp::from_millis(5 * MS_PER_HOUR);
        assert_eq!(rejudge_at(&state, &policy, now), None, "no qualifying verdict: judged when they report");
        state.qualifying = vec![record(1, false), record(4, false), record(4 + 1, true)];
        let cooldown = policy.classifier.cooldown.ms();
        assert_eq!(
            rejudge_at(&state, &policy, now),
            Some(Timestamp::from_millis(4 * MS_PER_HOUR + cooldown + REJUDGE_GRACE_MS)),
            "the latest verdict that stands, not the overturned one"
        );
        let after = Timestamp::from_millis(4 * MS_PER_HOUR + cooldown + REJUDGE_GRACE_MS);
        assert_eq!(rejudge_at(&state, &policy, after), None, "the instant has come: nothing more to queue");
        let job = rejudge_job("u", None, now);
        assert!(job.is_due_evaluation());
        assert_ne!(job.id, due_evaluation_job("u", None, now).id, "a pending due evaluation does not swallow it");
    }

    #[test]
    fn a_rejudgement_that_finds_the_slot_taken_tries_once_more_a_check_interval_later() {
        let policy = Policy::default();
        let now = Timestamp::from_millis(20 * MS_PER_HOUR);
        let interval = policy.metering.check_interval.ms();
        let job = rejudge_job("u", None, now);
        assert!(job.is_rejudge());
        assert_eq!(
            retry_due_evaluation(&job, &policy, now),
            Some(now.plus_ms(interval)),
            "the slot may not have judged"
        );
        let retried = Job { attempts: 1, ..job };
        assert_eq!(retry_due_evaluation(&retried, &policy, now), None, "a slot taken after that judged");
        let crossing = due_evaluation_job("u", None, now);
        assert!(!crossing.is_rejudge());
        assert_eq!(
            retry_due_evaluation(&crossing, &policy, now),
            None,
            "a crossing's is done: the slot read its windows"
        );
        let classifier = Job { id: "0b9c".into(), ..crossing };
        assert!(!classifier.is_rejudge() && !classifier.is_due_evaluation());
    }

    #[test]
    fn a_verdict_measured_on_duplicate_audio_spaces_the_ladder_by_the_fingerprint_cooldown() {
        use crate::engine::VerdictRecord;
        use crate::time::DurationMs;
        let policy = Policy::default();
        let i = input(300, vec![session("s1", 150, 0, 90), session("s2", 150, 20, 0)]);
        let measured = duplicate_audio_verdict(&i, &policy).expect("qualifies on duplicate audio");
        assert!(measured.is_measured());
        assert_eq!(lock_hold(&measured, true, &policy), DurationMs::hours(6));
        // An inference that qualifies keeps the classifier's cooldown, even if it also cites a
        // session that repeats: only a verdict that rests wholly on duplicate audio is measured.
        let conversation = Evidence::conversation("c1", "Chapter 4", "read aloud");
        let inferred = Verdict { evidence: vec![conversation.clone()], model: "m".into(), ..measured.clone() };
        assert!(!inferred.is_measured());
        assert_eq!(lock_hold(&inferred, true, &policy), DurationMs::hours(12));
        let mixed = Verdict { evidence: vec![measured.evidence[0].clone(), conversation], ..measured.clone() };
        assert!(!mixed.is_measured());
        assert_eq!(lock_hold(&mixed, true, &policy), DurationMs::hours(12));
        assert!(!Verdict::no_evidence().is_measured(), "citing nothing is not a measurement");
        // A verdict under the line keeps the re-check whatever it cites.
        let under = Verdict { misuse_score: 0.2, ..measured.clone() };
        assert_eq!(lock_hold(&under, true, &policy), DurationMs::hours(1), "close re-check: audio repeats");

        // The ladder records what kind of verdict it was, and the re-judgement follows it.
        let mut state = EnforcementState::default();
        let mut ids = crate::ids::SequentialIds::new(1);
        let at = Timestamp::from_millis(10 * MS_PER_HOUR);
        let mut ctx = Ctx { policy: &policy, now: at, uid: "u", ids: &mut ids };
        crate::engine::apply_verdict(&mut state, measured, None, None, &mut ctx);
        assert_eq!(state.stage, Stage::Warning);
        assert!(state.qualifying[0].measured);
        let due = rejudge_at(&state, &policy, at).expect("queued");
        assert_eq!(due, at.plus_ms(6 * MS_PER_HOUR + REJUDGE_GRACE_MS));
        state.qualifying[0] = VerdictRecord { measured: false, ..state.qualifying[0].clone() };
        assert_eq!(rejudge_at(&state, &policy, at), Some(at.plus_ms(12 * MS_PER_HOUR + REJUDGE_GRACE_MS)));
    }

    fn decision(stt_allowed: bool, remaining_ms: Option<i64>) -> Decision {
        let now = Timestamp::from_millis(MS_PER_HOUR);
        Decision {
            stage: Stage::Restrict,
            effective_stage: Stage::Restrict,
            stt_allowed,
            sync_allowed: true,
            stt_model_tier: "standard".into(),
            stt_budget: remaining_ms.map(|r| engine::budget_status(60_000, 60_000 - r, now)),
            windows: Default::default(),
            caps: Default::default(),
            plan: "free".into(),
            triggered: Vec::new(),
            ceiling_exceeded: false,
            retry_after_s: None,
            reasons: Vec::new(),
            shadow: false,
            case_ref: None,
        }
    }

    #[test]
    fn a_denial_only_because_the_budget_store_is_down_holds_the_stream_and_a_spent_budget_stops_it() {
        let policy = Policy::default();
        let down = DecisionWithHealth { decision: decision(false, Some(60_000)), budget_unavailable: true };
        assert_eq!(lease(Some(&down), true, &policy), Lease::Hold);
        let spent = DecisionWithHealth { decision: decision(false, Some(0)), budget_unavailable: false };
        assert_eq!(lease(Some(&spent), true, &policy), Lease::Stop);
        let left = DecisionWithHealth { decision: decision(true, Some(1)), budget_unavailable: false };
        assert_eq!(lease(Some(&left), true, &policy), Lease::Grant { ms: 1 }, "never more than the budget left");
    }
}
