//! Re-scores a verdict log written by `fairuse eval --verdicts FILE --verdict-inputs` with the
//! heuristic as it is now, without replaying the trace: per label kind, how many users' runs
//! qualify, the first judgement's rate, how many users have their first four runs within 48 h all
//! qualifying (what restrict within 48 h needs), and the highest honest scores with their signals.
//!
//! ```sh
//! cargo run --release -p fairuse-domain --example rescore -- verdicts.jsonl [--show KIND]
//! ```
//!
//! The classifier runs' instants do not depend on their verdicts (the cooldown holds either way),
//! so the rates are exact for the runs the log holds; a user restricted before the end of the
//! trace has no later runs in it.

use std::collections::BTreeMap;
use std::io::BufRead;

use fairuse_domain::classifier::{ClassifierInput, HeuristicClassifier};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    uid: String,
    kind: Option<String>,
    hours: f64,
    run: u32,
    input: Option<ClassifierInput>,
}

#[derive(Default)]
struct Runs {
    /// uid -> (run, hours, score, signals) in run order.
    users: BTreeMap<String, Vec<(u32, f64, f64, String)>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: rescore VERDICTS.jsonl [--show KIND]")?;
    let show = args.iter().position(|a| a == "--show").and_then(|i| args.get(i + 1)).cloned();
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut kinds: BTreeMap<String, Runs> = BTreeMap::new();
    for line in file.lines() {
        let l: Line = serde_json::from_str(&line?)?;
        let kind = l.kind.unwrap_or_default();
        let (score, signals) = match &l.input {
            Some(input) if !input.conversations.is_empty() => {
                let e = HeuristicClassifier.explain(input);
                let s: Vec<String> = e
                    .signals
                    .iter()
                    .filter(|s| s.score != 0.0)
                    .map(|s| {
                        format!(
                            "{}={:.2}{}",
                            s.name,
                            s.score,
                            if s.detail.is_empty() { String::new() } else { format!(" ({})", s.detail) }
                        )
                    })
                    .collect();
                (e.verdict.misuse_score, s.join(", "))
            }
            _ => (0.0, "no conversations".into()),
        };
        if show.as_deref() == Some(kind.as_str()) {
            println!("{} run {} at {:.1} h: {score:.3} [{signals}]", l.uid, l.run, l.hours);
        }
        kinds.entry(kind).or_default().users.entry(l.uid).or_default().push((l.run, l.hours, score, signals));
    }
    for (kind, runs) in &kinds {
        let honest = !kind.starts_with("abuser");
        let users = runs.users.len();
        let mut per_run = [(0usize, 0usize); 4];
        let (mut four, mut max) = (0usize, (0.0f64, String::new(), String::new()));
        for (uid, rs) in &runs.users {
            for (i, r) in rs.iter().take(4).enumerate() {
                per_run[i].1 += 1;
                per_run[i].0 += usize::from(r.2 >= 0.7);
            }
            let within: Vec<_> = rs.iter().filter(|r| r.1 <= 48.0).take(4).collect();
            four += usize::from(within.len() == 4 && within.iter().all(|r| r.2 >= 0.7));
            for r in rs {
                if r.2 > max.0 {
                    max = (r.2, uid.clone(), r.3.clone());
                }
            }
        }
        let rates: Vec<String> = per_run.iter().map(|(q, n)| format!("{q}/{n}")).collect();
        println!(
            "{kind}: {users} users; qualifying by run {}; {four} with the first four runs ≤ 48 h qualifying{}",
            rates.join(" "),
            if honest { format!("; max {:.3} {} [{}]", max.0, max.1, max.2) } else { String::new() }
        );
    }
    Ok(())
}
