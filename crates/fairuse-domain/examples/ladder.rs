//! Replays the classifier's timing on a *dense* verdict log: one written by `fairuse eval
//! --verdicts FILE --verdict-inputs` under a policy that judges every hour and never leaves
//! `warning` (`bench/dense-policy.toml`), so the log holds each user's classifier input hour by
//! hour. For each user it walks the shipped timing with the heuristic as it is now: the first run,
//! then the next run at or after the cooldown (qualifying) or the re-check (not qualifying, shorter
//! when the score was close to the line), and counts when the fourth qualifying verdict comes (the
//! restrict). Per label kind: users restricted within 48 h, the median hour of the restrict, the
//! first judgement's rate, and for honest kinds the highest score of any hour (stricter than the
//! ladder: every hour is judged).
//!
//! ```sh
//! fairuse eval --trace t.jsonl --labels tl.jsonl --policy bench/dense-policy.toml \
//!   --verdicts dense.jsonl --verdict-inputs -o /dev/null
//! cargo run --release -p fairuse-domain --example ladder -- dense.jsonl [--show KIND [--detail]] [--policy FILE]
//! ```
//!
//! An approximation of `fairuse eval` for fast iteration: the hour a run falls on is the first
//! logged hour at or after it is due, so a run may come up to an hour late; confirm with `eval`.

use std::collections::BTreeMap;
use std::io::BufRead;

use fairuse_domain::classifier::HeuristicClassifier;
use fairuse_domain::policy::Policy;

mod common;
use common::Line;

struct Run {
    hours: f64,
    score: f64,
    signals: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: ladder DENSE-VERDICTS.jsonl [--show KIND [--detail]] [--policy FILE]")?;
    let show = args.iter().position(|a| a == "--show").and_then(|i| args.get(i + 1)).cloned();
    // `--policy FILE`: the timing of another policy (its cooldown, re-checks and line).
    let detail = args.iter().any(|a| a == "--detail");
    let policy = match args.iter().position(|a| a == "--policy").and_then(|i| args.get(i + 1)) {
        Some(file) => Policy::from_toml_str(&std::fs::read_to_string(file)?)?,
        None => Policy::default(),
    };
    let line = policy.classifier.qualify_score;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut kinds: BTreeMap<String, BTreeMap<String, Vec<Run>>> = BTreeMap::new();
    for l in file.lines() {
        let l: Line = serde_json::from_str(&l?)?;
        let (score, signals) = match &l.input {
            Some(input) if !input.conversations.is_empty() => {
                let e = HeuristicClassifier.explain(input);
                let s: Vec<String> =
                    e.signals.iter().filter(|s| s.score != 0.0).map(|s| format!("{}={:.2}", s.name, s.score)).collect();
                (e.verdict.misuse_score, s.join(", "))
            }
            _ => (0.0, "no conversations".into()),
        };
        let kind = l.kind.unwrap_or_default();
        kinds.entry(kind).or_default().entry(l.uid).or_default().push(Run { hours: l.hours, score, signals });
    }
    let (mut all_abusers, mut all_within) = (0usize, 0usize);
    for (kind, users) in &kinds {
        let honest = !kind.starts_with("abuser");
        let (mut within, mut first_ok, mut restrict_hours, mut max) = (0, 0, Vec::new(), (0.0f64, String::new()));
        let mut warned = 0;
        for (uid, runs) in users {
            let mut runs: Vec<&Run> = runs.iter().collect();
            runs.sort_by(|a, b| a.hours.total_cmp(&b.hours));
            for r in &runs {
                if r.score > max.0 {
                    max = (r.score, format!("{uid} at {:.1} h: {}", r.hours, r.signals));
                }
            }
            let (mut due, mut qualifying, mut restricted, mut trail) = (0.0, 0, None, Vec::new());
            for r in &runs {
                if r.hours + 1e-9 < due {
                    continue;
                }
                let q = r.score >= line;
                if trail.is_empty() && q {
                    first_ok += 1;
                }
                trail.push(if detail {
                    format!("\n  {:.0}h:{:.2} [{}]", r.hours, r.score, r.signals)
                } else {
                    format!("{:.0}h:{:.2}", r.hours, r.score)
                });
                due = r.hours + policy.classifier.hold_after_score(r.score).ms() as f64 / 3_600_000.0;
                if q {
                    qualifying += 1;
                    if qualifying == 4 {
                        restricted = Some(r.hours);
                        break;
                    }
                }
            }
            warned += usize::from(qualifying > 0);
            if let Some(h) = restricted {
                restrict_hours.push(h);
                within += usize::from(h <= 48.0);
            }
            if show.as_deref() == Some(kind.as_str()) {
                println!("{uid}: {}", trail.join(" "));
            }
        }
        restrict_hours.sort_by(f64::total_cmp);
        let median = restrict_hours.get(restrict_hours.len() / 2).map_or("-".into(), |h| format!("{h:.1}"));
        if honest {
            println!("{kind}: {} users; warned {warned}; max {:.3} ({})", users.len(), max.0, max.1);
        } else {
            all_abusers += users.len();
            all_within += within;
            println!(
                "{kind}: {} users; first judgement qualifies {first_ok}; restricted {} (<= 48 h {within}), median {median} h",
                users.len(),
                restrict_hours.len()
            );
        }
    }
    println!("abusers restricted <= 48 h: {all_within}/{all_abusers}");
    Ok(())
}
