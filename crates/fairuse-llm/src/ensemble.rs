//! Heuristic first, model for the doubtful cases.
//!
//! The offline heuristic settles what is clearly personal (score below `clear_below`) or
//! clearly misuse (score at or above `clear_above`); only the band in between costs a model call.
//! The defaults put the qualify score (0.7) inside that band, so no heuristic verdict between
//! 0.3 and 0.85 escalates anyone without the model agreeing.
//!
//! When the model fails, the ensemble fails: no verdict, the service records the failure and
//! releases the lock (fail open), and the next cap check asks again. Returning the heuristic's
//! verdict instead (even capped below the qualify score) would record a doubtful case as settled
//! and start the cooldown on a judgement nobody trusted; an error costs only a later retry.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use fairuse_domain::classifier::{Classifier, ClassifierError, ClassifierInput, Verdict};

const ROUTES_METRIC: &str = "fairuse_llm_ensemble_routes_total";

/// Asks `heuristic` first and `model` only when the heuristic's score is doubtful.
#[derive(Clone)]
pub struct EnsembleClassifier {
    pub heuristic: Arc<dyn Classifier>,
    pub model: Arc<dyn Classifier>,
    /// Heuristic scores below this are clear (personal use): the heuristic's verdict stands.
    pub clear_below: f64,
    /// Heuristic scores at or above this are clear (misuse): the heuristic's verdict stands.
    pub clear_above: f64,
}

impl EnsembleClassifier {
    pub const DEFAULT_CLEAR_BELOW: f64 = 0.3;
    pub const DEFAULT_CLEAR_ABOVE: f64 = 0.85;

    pub fn new(heuristic: Arc<dyn Classifier>, model: Arc<dyn Classifier>) -> Self {
        EnsembleClassifier {
            heuristic,
            model,
            clear_below: Self::DEFAULT_CLEAR_BELOW,
            clear_above: Self::DEFAULT_CLEAR_ABOVE,
        }
    }

    /// Whether the heuristic's (clamped) score settles the case without the model.
    pub fn is_clear(&self, score: f64) -> bool {
        score < self.clear_below || score >= self.clear_above
    }
}

impl fmt::Debug for EnsembleClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsembleClassifier")
            .field("heuristic", &self.heuristic.name())
            .field("model", &self.model.name())
            .field("clear_below", &self.clear_below)
            .field("clear_above", &self.clear_above)
            .finish()
    }
}

#[async_trait]
impl Classifier for EnsembleClassifier {
    fn name(&self) -> &str {
        "ensemble"
    }

    /// A heuristic failure is returned as is: the model is the expensive second opinion, not a
    /// fallback for a broken first one.
    ///
    /// The members are awaited one after the other, not together: the model is asked only when
    /// the heuristic's answer is doubtful, so asking both at once would pay for a model call on
    /// every clear case (and count it in the model's metrics) only to throw it away.
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        let first = self.heuristic.classify(input).await?.clamped();
        if self.is_clear(first.misuse_score) {
            metrics::counter!(ROUTES_METRIC, "route" => "heuristic").increment(1);
            return Ok(first);
        }
        metrics::counter!(ROUTES_METRIC, "route" => "model").increment(1);
        tracing::debug!(uid = %input.uid, heuristic_score = first.misuse_score, "doubtful case; asking the model");
        // The verdict's `model` field says which backend decided: the heuristic's or the model's.
        self.model.classify(input).await.map(Verdict::clamped)
    }
}
