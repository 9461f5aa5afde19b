//! fairuse-domain: the fair-use decision engine.
//!
//! Windows, policy, the ladder, timers, budgets, the classifier port and the store ports, as pure
//! functions of (state, input, clock). It must not depend on tokio, sqlx, redis, reqwest or axum:
//! adapters depend on it, never the other way round.
#![forbid(unsafe_code)]

pub mod classifier;
pub mod engine;
pub mod error;
pub mod ids;
pub mod pipeline;
pub mod policy;
pub mod prints;
pub mod sessions;
pub mod stage;
pub mod store;
pub mod time;
pub mod windows;

pub use classifier::{Classifier, ClassifierInput, Conversation, UsageType, Verdict};
pub use engine::{Decision, EnforcementState, Event, EventKind};
pub use error::{InputError, StoreError};
pub use ids::{CaseRef, Lane, Uid};
pub use policy::Policy;
pub use sessions::{SpeechRuns, SpeechShape, StreamSession};
pub use stage::Stage;
pub use time::{Clock, DurationMs, ManualClock, Timestamp};
pub use windows::{UsageReport, UserMeter, WindowTotals};
