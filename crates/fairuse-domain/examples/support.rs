//! How far usage shape and conversation structure go without words, on a *dense* verdict log
//! (`fairuse eval --verdicts FILE --verdict-inputs` under `bench/dense-policy.toml`, as for
//! `examples/ladder`). Per label kind, the heuristic's shape score plus every structure signal
//! (uncapped, counted as if content were there): for honest kinds the highest of any hour; for
//! abuser kinds each user's best within the first `--hours` hours (default 12: the ladder needs
//! its first qualifying verdict by then to restrict within 48 h), as median and minimum over users.
//! When honest users reach what abusers reach, a verdict without words cannot tell them apart.
//!
//! ```sh
//! cargo run --release -p fairuse-domain --example support -- dense.jsonl [--hours 12]
//! ```

use std::collections::BTreeMap;
use std::io::BufRead;

use fairuse_domain::classifier::HeuristicClassifier;

mod common;
use common::Line;

/// The signals that read no words: the shape and the structure parts, before any cap.
const WORDLESS: [&str; 6] =
    ["shape", "continuous speech", "back-to-back chain", "day coverage", "numbered series", "media category"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: support DENSE-VERDICTS.jsonl [--hours H]")?;
    let within: f64 = match args.iter().position(|a| a == "--hours").and_then(|i| args.get(i + 1)) {
        Some(h) => h.parse()?,
        None => 12.0,
    };
    // kind -> uid -> best wordless score (honest: any hour; abusers: within `within` hours).
    let mut best: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for l in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        let l: Line = serde_json::from_str(&l?)?;
        let (Some(kind), Some(input)) = (l.kind, l.input) else { continue };
        let honest = !kind.starts_with("abuser");
        if input.conversations.is_empty() || (!honest && l.hours > within) {
            continue;
        }
        let e = HeuristicClassifier.explain(&input);
        let score: f64 = e.signals.iter().filter(|s| WORDLESS.contains(&s.name)).map(|s| s.score).sum();
        let user = best.entry(kind).or_default().entry(l.uid).or_insert(0.0);
        *user = user.max(score);
    }
    for (kind, users) in &best {
        let mut v: Vec<f64> = users.values().copied().collect();
        v.sort_by(f64::total_cmp);
        if kind.starts_with("abuser") {
            println!(
                "{kind}: {} users, best within {within} h: median {:.2}, min {:.2}",
                v.len(),
                v[v.len() / 2],
                v[0]
            );
        } else {
            println!("{kind}: {} users, highest of any hour {:.2}", v.len(), v[v.len() - 1]);
        }
    }
    Ok(())
}
