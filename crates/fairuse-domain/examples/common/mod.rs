//! What the examples read from a dense verdict log (`fairuse eval --verdicts FILE
//! --verdict-inputs` under `bench/dense-policy.toml`): one line per user and logged hour.

use fairuse_domain::classifier::ClassifierInput;
use serde::Deserialize;

/// One logged hour of one user: its label kind, the hour since the trace began, and the
/// classifier input at that hour (absent when nothing was to be judged).
#[derive(Deserialize)]
pub struct Line {
    pub uid: String,
    pub kind: Option<String>,
    pub hours: f64,
    pub input: Option<ClassifierInput>,
}
