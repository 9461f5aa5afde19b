//! The report: rows per population, summaries per family set, markdown.

use fairuse_domain::time::MS_PER_HOUR;
use serde::Serialize;

/// One population's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindRow {
    pub kind: String,
    /// The family set from the labels (`tuning`, `held_out`), if they name one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// Every kind not starting with `abuser` is honest.
    pub honest: bool,
    /// Users of this kind that appear in the trace.
    pub users: u64,
    /// Users the classifier ran for at least once.
    pub classified: u64,
    /// Users who reached warning / throttle / restrict through a misuse verdict (detections for
    /// abusers, false warnings / throttles / restricts for honest users).
    pub warned: u64,
    pub throttled: u64,
    pub restricted: u64,
    /// Users who reached a stage only through the synthetic `free_exhausted` verdict.
    pub free_exhausted_only: u64,
    /// Users restricted (by any verdict) within `within_hours` of their first usage.
    pub restricted_within: u64,
    /// Hours from first usage to restrict (by any verdict), over the users restricted.
    pub median_hours_to_restrict: Option<f64>,
    pub max_hours_to_restrict: Option<f64>,
    /// Abusers whose most frequent qualifying verdict names their own usage type.
    pub typed_right: u64,
    pub classifier_runs: u64,
    /// STT audio the budgets held back for this population (the simulator's own figure).
    pub stt_ms_saved: i64,
}

impl KindRow {
    /// Adds another population's counts, for a table's total row (per-user figures such as the
    /// median are not summed).
    pub(super) fn add(&mut self, r: &KindRow) {
        self.users += r.users;
        self.classified += r.classified;
        self.warned += r.warned;
        self.throttled += r.throttled;
        self.restricted += r.restricted;
        self.free_exhausted_only += r.free_exhausted_only;
        self.restricted_within += r.restricted_within;
        self.typed_right += r.typed_right;
        self.classifier_runs += r.classifier_runs;
        self.stt_ms_saved += r.stt_ms_saved;
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub classifier: String,
    pub within_hours: u32,
    /// Lines read from the trace.
    pub lines: u64,
    pub users: u64,
    pub classifier_runs: u64,
    pub stt_ms_saved: i64,
    /// Honest kinds first, then abusers, each alphabetical.
    pub rows: Vec<KindRow>,
    /// One summary per family set, when the labels name sets (held-out first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetSummary>,
}

/// What happened to one set of families (tuning or held out).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SetSummary {
    pub set: String,
    pub abuser_families: u64,
    pub abusers: u64,
    pub abusers_restricted_within: u64,
    pub honest_families: u64,
    pub honest_users: u64,
    /// Honest users warned (or more) by a misuse verdict.
    pub honest_warned: u64,
    pub honest_throttled: u64,
    pub honest_restricted: u64,
    /// At least 95 % of the abusers restricted within the window and no honest user warned.
    pub goal_met: bool,
}

impl SetSummary {
    pub(super) fn of(set: &str, rows: &[KindRow]) -> SetSummary {
        let mut s = SetSummary { set: set.to_owned(), ..SetSummary::default() };
        for r in rows.iter().filter(|r| r.set.as_deref() == Some(set)) {
            if r.honest {
                s.honest_families += 1;
                s.honest_users += r.users;
                s.honest_warned += r.warned;
                s.honest_throttled += r.throttled;
                s.honest_restricted += r.restricted;
            } else {
                s.abuser_families += 1;
                s.abusers += r.users;
                s.abusers_restricted_within += r.restricted_within;
            }
        }
        s.goal_met = s.honest_warned == 0 && s.abusers_restricted_within * 100 >= s.abusers * 95;
        s
    }
}

impl EvalReport {
    pub(super) fn rows_where(&self, honest: bool) -> impl Iterator<Item = &KindRow> {
        self.rows.iter().filter(move |r| r.honest == honest)
    }

    pub fn honest_users(&self) -> u64 {
        self.rows_where(true).map(|r| r.users).sum()
    }
    pub fn abusers(&self) -> u64 {
        self.rows_where(false).map(|r| r.users).sum()
    }
    /// Honest users throttled or restricted by a misuse verdict.
    pub fn false_throttles(&self) -> u64 {
        self.rows_where(true).map(|r| r.throttled).sum()
    }
    pub fn false_restricts(&self) -> u64 {
        self.rows_where(true).map(|r| r.restricted).sum()
    }
    pub fn false_warnings(&self) -> u64 {
        self.rows_where(true).map(|r| r.warned).sum()
    }
    pub fn abusers_restricted_within(&self) -> u64 {
        self.rows_where(false).map(|r| r.restricted_within).sum()
    }

    /// The bar: no honest user throttled or restricted, and at least 95 % of the abusers
    /// restricted within the window.
    pub fn goal_met(&self) -> bool {
        let abusers = self.abusers();
        self.false_throttles() == 0
            && self.false_restricts() == 0
            && (abusers == 0 || self.abusers_restricted_within() * 100 >= abusers * 95)
    }

    /// The summary of one family set (`held_out`, `tuning`), if the labels name it.
    pub fn set(&self, set: &str) -> Option<&SetSummary> {
        self.sets.iter().find(|s| s.set == set)
    }

    /// The report as markdown: one table for abusers, one for honest users, and the verdict on the
    /// goal; with family sets, a set column and a table per set with the held-out goal.
    pub fn markdown(&self) -> String {
        let with_sets = self.rows.iter().any(|r| r.set.is_some());
        let set_head = if with_sets { " set |" } else { "" };
        let set_rule = if with_sets { "---|" } else { "" };
        let set_cell = |r: &KindRow| {
            if with_sets { format!(" {} |", r.set.as_deref().map_or("–", set_name)) } else { String::new() }
        };
        let blank = if with_sets { " |" } else { "" };
        let hours = |ms: i64| format!("{:.0}", ms as f64 / MS_PER_HOUR as f64);
        let opt = |h: Option<f64>| h.map_or_else(|| "–".to_owned(), |h| format!("{h:.1}"));
        let pct =
            |n: u64, d: u64| if d == 0 { "–".to_owned() } else { format!("{:.1} %", 100.0 * n as f64 / d as f64) };
        let w = self.within_hours;
        let mut s = String::new();
        s.push_str(&format!(
            "{} users, {} trace lines, classifier `{}`: {} classifier runs, {} h of STT audio held back by budgets.\n\n",
            self.users,
            self.lines,
            self.classifier,
            self.classifier_runs,
            hours(self.stt_ms_saved)
        ));
        s.push_str(&format!(
            "| abusers |{set_head} users | detected (warned) | restricted | restricted ≤ {w} h | median h to restrict | max h to restrict | usage type right | staged for exhausted free credits only | STT h saved |\n"
        ));
        s.push_str(&format!("|---|{set_rule}---|---|---|---|---|---|---|---|---|\n"));
        let mut total = KindRow::default();
        for r in self.rows_where(false) {
            s.push_str(&format!(
                "| {} |{} {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |\n",
                r.kind,
                set_cell(r),
                r.users,
                r.warned,
                r.restricted,
                r.restricted_within,
                pct(r.restricted_within, r.users),
                opt(r.median_hours_to_restrict),
                opt(r.max_hours_to_restrict),
                r.typed_right,
                r.free_exhausted_only,
                hours(r.stt_ms_saved)
            ));
            total.add(r);
        }
        s.push_str(&format!(
            "| **all abusers** |{blank} {} | {} | {} | {} ({}) | | | {} | {} | {} |\n\n",
            total.users,
            total.warned,
            total.restricted,
            total.restricted_within,
            pct(total.restricted_within, total.users),
            total.typed_right,
            total.free_exhausted_only,
            hours(total.stt_ms_saved)
        ));
        s.push_str(&format!("| honest users |{set_head} users | classified | false warnings | false throttles | false restricts | staged for exhausted free credits (by design) | STT h saved |\n"));
        s.push_str(&format!("|---|{set_rule}---|---|---|---|---|---|---|\n"));
        let mut total = KindRow::default();
        for r in self.rows_where(true) {
            s.push_str(&format!(
                "| {} |{} {} | {} | {} | {} | {} | {} | {} |\n",
                r.kind,
                set_cell(r),
                r.users,
                r.classified,
                r.warned,
                r.throttled,
                r.restricted,
                r.free_exhausted_only,
                hours(r.stt_ms_saved)
            ));
            total.add(r);
        }
        s.push_str(&format!(
            "| **all honest** |{blank} {} | {} | {} | {} | {} | {} | {} |\n\n",
            total.users,
            total.classified,
            total.warned,
            total.throttled,
            total.restricted,
            total.free_exhausted_only,
            hours(total.stt_ms_saved)
        ));
        let abusers = self.abusers();
        s.push_str(&format!(
            "Goal (no honest user throttled or restricted by a misuse verdict, ≥ 95 % of abusers restricted within {w} h of their first usage): **{}** — {} honest throttled, {} honest restricted, {} of {} abusers ({}) restricted within {w} h.\n",
            if self.goal_met() { "met" } else { "not met" },
            self.false_throttles(),
            self.false_restricts(),
            self.abusers_restricted_within(),
            abusers,
            pct(self.abusers_restricted_within(), abusers),
        ));
        if !self.sets.is_empty() {
            s.push_str(&format!(
                "\n| family set | abuser families | abusers | restricted ≤ {w} h | honest families | honest users | honest warned | honest throttled | honest restricted | goal (≥ 95 % restricted ≤ {w} h, 0 honest warned) |\n"
            ));
            s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
            for x in &self.sets {
                s.push_str(&format!(
                    "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                    set_name(&x.set),
                    x.abuser_families,
                    x.abusers,
                    x.abusers_restricted_within,
                    pct(x.abusers_restricted_within, x.abusers),
                    x.honest_families,
                    x.honest_users,
                    x.honest_warned,
                    x.honest_throttled,
                    x.honest_restricted,
                    if x.goal_met { "met" } else { "not met" }
                ));
            }
            for x in &self.sets {
                s.push_str(&format!(
                    "\n{} families: {} of {} abusers ({}) restricted within {w} h; {} of {} honest users warned. Goal (≥ 95 % of abusers restricted within {w} h, 0 honest users warned): **{}**.\n",
                    if x.set == "held_out" { "Held-out (unseen)" } else if x.set == "tuning" { "Tuning" } else { x.set.as_str() },
                    x.abusers_restricted_within,
                    x.abusers,
                    pct(x.abusers_restricted_within, x.abusers),
                    x.honest_warned,
                    x.honest_users,
                    if x.goal_met { "met" } else { "not met" },
                ));
            }
        }
        s
    }
}

/// How a family set is written in the report.
pub(super) fn set_name(set: &str) -> &str {
    match set {
        "held_out" => "held-out",
        other => other,
    }
}
