//! The simulator's classifier: whatever the trace says.

use async_trait::async_trait;

use super::{Classifier, ClassifierError, ClassifierInput, UsageType, Verdict};

/// The simulator's classifier: returns whatever the trace's last `verdict` line for the user said.
#[derive(Debug, Clone)]
pub struct ScriptedClassifier {
    pub verdict: Verdict,
}

impl ScriptedClassifier {
    pub fn scripted(score: f64, usage_type: UsageType) -> Verdict {
        Verdict {
            misuse_score: score,
            usage_type,
            confidence: 1.0,
            evidence: Vec::new(),
            model: "scripted".into(),
            prompt_version: "scripted".into(),
            recipes: Vec::new(),
            demoted: None,
        }
        .clamped()
    }

    /// The scripted verdict, synchronously (it cannot fail).
    pub fn classify_now(&self, _input: &ClassifierInput) -> Verdict {
        self.verdict.clone()
    }
}

#[async_trait]
impl Classifier for ScriptedClassifier {
    async fn classify(&self, input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        Ok(self.classify_now(input))
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

#[cfg(test)]
mod tests {
    use super::super::Evidence;
    use super::*;

    #[test]
    fn clamping_bounds_scores_and_evidence() {
        let mut v = ScriptedClassifier::scripted(1.5, UsageType::Podcast);
        assert_eq!(v.misuse_score, 1.0);
        v.misuse_score = f64::NAN;
        v.evidence = (0..20).map(|i| Evidence::conversation(i.to_string(), String::new(), String::new())).collect();
        let v = v.clamped();
        assert_eq!(v.misuse_score, 0.0);
        assert_eq!(v.evidence.len(), 10);
        assert_eq!(ScriptedClassifier::scripted(-0.2, UsageType::None).misuse_score, 0.0);
    }
}
