//! fairuse-llm: the `openai` classifier backend of SPEC section 3 and the heuristic-first ensemble.
//!
//! Its job: turn a [`ClassifierInput`](fairuse_domain::classifier::ClassifierInput) into a prompt
//! for any OpenAI-compatible chat-completions endpoint ([`OpenAiClassifier`]), ask for structured
//! JSON output, bound every attempt by a timeout, retry once on a transient failure, and parse the
//! answer tolerantly into a clamped [`Verdict`](fairuse_domain::classifier::Verdict) that cites
//! only conversations it was shown. [`EnsembleClassifier`] lets the offline heuristic settle the
//! clear cases so the model (and its cost) only sees the doubtful ones.
//!
//! It implements the domain's async [`Classifier`](fairuse_domain::classifier::Classifier) port
//! (awaited on the caller's runtime, one pooled HTTP client per backend) and must not depend on
//! axum, the server crate or any store adapter: the composition root wires it up. Failures are
//! `Err`, never a made-up verdict, so the service fails open.
#![forbid(unsafe_code)]

mod answer;
mod config;
mod ensemble;
mod openai;
mod prompt;

pub use config::{LlmConfig, LlmError};
pub use ensemble::EnsembleClassifier;
pub use openai::OpenAiClassifier;
pub use prompt::{PROMPT_VERSION, SCHEMA_NAME};
