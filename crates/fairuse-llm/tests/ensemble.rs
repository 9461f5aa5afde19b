//! The ensemble with stub classifiers: who decides which case, and what a model failure does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use fairuse_domain::classifier::{
    Classifier, ClassifierError, ClassifierInput, Conversation, HeuristicClassifier, ScriptedClassifier, UsageShape,
    UsageType, Verdict,
};
use fairuse_domain::time::{MS_PER_HOUR, MS_PER_MINUTE, Timestamp};
use fairuse_llm::EnsembleClassifier;

/// Answers a fixed result and counts its calls.
struct Stub {
    name: &'static str,
    answer: Result<Verdict, ClassifierError>,
    calls: AtomicUsize,
}

impl Stub {
    fn verdict(name: &'static str, score: f64) -> Arc<Stub> {
        let mut v = ScriptedClassifier::scripted(score, UsageType::Audiobook);
        v.model = name.into();
        Arc::new(Stub { name, answer: Ok(v), calls: AtomicUsize::new(0) })
    }

    fn failing(name: &'static str, error: ClassifierError) -> Arc<Stub> {
        Arc::new(Stub { name, answer: Err(error), calls: AtomicUsize::new(0) })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Classifier for Stub {
    async fn classify(&self, _input: &ClassifierInput) -> Result<Verdict, ClassifierError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
    fn name(&self) -> &str {
        self.name
    }
}

fn input(conversations: Vec<Conversation>) -> ClassifierInput {
    ClassifierInput {
        uid: "u".into(),
        plan: "free".into(),
        conversations,
        shape: UsageShape::default(),
        window_totals_ms: vec![],
        sessions: vec![],
    }
}

fn conversation(i: usize, title: &str) -> Conversation {
    let start = Timestamp::from_millis(1_764_000_000_000 + i as i64 * 2 * MS_PER_HOUR);
    Conversation {
        conversation_id: format!("c{i}"),
        title: title.into(),
        overview: String::new(),
        category: "work".into(),
        started_at: start,
        finished_at: start.plus_ms(50 * MS_PER_MINUTE),
        source: "omi".into(),
        speaker_count: None,
        word_count: None,
    }
}

fn ensemble(heuristic: &Arc<Stub>, model: &Arc<Stub>) -> EnsembleClassifier {
    EnsembleClassifier::new(heuristic.clone(), model.clone())
}

#[tokio::test]
async fn clearly_personal_use_is_settled_by_the_heuristic_without_the_model() {
    let (h, m) = (Stub::verdict("heuristic", 0.1), Stub::verdict("model", 0.9));
    let v = ensemble(&h, &m).classify(&input(vec![])).await.unwrap();
    assert_eq!((v.misuse_score, v.model.as_str()), (0.1, "heuristic"));
    assert_eq!(m.calls(), 0);
}

#[tokio::test]
async fn clear_misuse_is_settled_by_the_heuristic_without_the_model() {
    for score in [0.85, 0.97] {
        let (h, m) = (Stub::verdict("heuristic", score), Stub::verdict("model", 0.2));
        let v = ensemble(&h, &m).classify(&input(vec![])).await.unwrap();
        assert_eq!((v.misuse_score, v.model.as_str()), (score, "heuristic"));
        assert_eq!(m.calls(), 0, "score {score}");
    }
}

#[tokio::test]
async fn doubtful_cases_go_to_the_model_and_its_verdict_stands() {
    for score in [0.3, 0.5, 0.7, 0.84] {
        let (h, m) = (Stub::verdict("heuristic", score), Stub::verdict("model", 0.2));
        let v = ensemble(&h, &m).classify(&input(vec![])).await.unwrap();
        assert_eq!((v.misuse_score, v.model.as_str()), (0.2, "model"), "score {score}");
        assert_eq!((h.calls(), m.calls()), (1, 1));
    }
}

#[tokio::test]
async fn a_model_failure_on_a_doubtful_case_fails_the_ensemble() {
    // Fail open: no verdict at all, rather than the heuristic's doubtful one.
    for error in [ClassifierError::Timeout, ClassifierError::BadAnswer("not json".into())] {
        let (h, m) = (Stub::verdict("heuristic", 0.75), Stub::failing("model", error.clone()));
        assert_eq!(ensemble(&h, &m).classify(&input(vec![])).await, Err(error));
    }
}

#[tokio::test]
async fn a_heuristic_failure_is_returned_without_asking_the_model() {
    let (h, m) = (Stub::failing("heuristic", ClassifierError::Backend("boom".into())), Stub::verdict("model", 0.9));
    assert!(ensemble(&h, &m).classify(&input(vec![])).await.is_err());
    assert_eq!(m.calls(), 0);
}

#[tokio::test]
async fn thresholds_are_adjustable() {
    let (h, m) = (Stub::verdict("heuristic", 0.5), Stub::verdict("model", 0.1));
    let e = EnsembleClassifier { clear_below: 0.6, ..ensemble(&h, &m) };
    assert_eq!(e.classify(&input(vec![])).await.unwrap().model, "heuristic");
    assert_eq!(m.calls(), 0);
    assert_eq!(e.name(), "ensemble");
    assert!(format!("{e:?}").contains("heuristic"));
}

#[tokio::test]
async fn with_the_real_heuristic_a_day_of_meetings_never_reaches_the_model() {
    let model = Stub::failing("model", ClassifierError::Timeout);
    let e = EnsembleClassifier::new(Arc::new(HeuristicClassifier), model.clone());
    let meetings: Vec<_> = (1..=12).map(|i| conversation(i, &format!("Team meeting {i}"))).collect();
    let v = e.classify(&input(meetings)).await.unwrap();
    assert!(v.misuse_score < 0.3, "{v:?}");
    assert_eq!(model.calls(), 0);
}
