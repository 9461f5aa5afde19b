//! Reading the model's answer: find the JSON, coerce what can be coerced, reject what cannot.
//!
//! Tolerant on purpose (reference section 5.6): servers that ignore `response_format` wrap the
//! JSON in a Markdown fence or send nulls. What is tolerated is stated here; anything that leaves
//! the score unknowable is a [`ClassifierError::BadAnswer`], never a guessed verdict.

use std::collections::{BTreeMap, BTreeSet};

use fairuse_domain::classifier::{ClassifierError, Evidence, MAX_EVIDENCE, UsageType};
use serde_json::Value;

use crate::prompt::MODEL_USAGE_TYPES;

/// Evidence reasons are stored with the verdict; a runaway model must not fill the event store.
const MAX_REASON_CHARS: usize = 300;

/// The parsed answer, before the model name, prompt version and recipes are attached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub misuse_score: f64,
    pub usage_type: UsageType,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    /// Evidence items dropped because they cited a conversation the model was not shown.
    pub invented_evidence: usize,
}

/// The JSON inside the answer: the content of a ```json fence, else of the first ``` fence, else
/// the whole text. An unclosed fence runs to the end of the text.
pub(crate) fn extract_json(text: &str) -> &str {
    // ASCII lowercasing keeps byte offsets, so positions found in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    let fenced = |open: usize, tag_len: usize| {
        let mut start = open + 3 + tag_len;
        // Skip a language tag we did not ask for ("```javascript"), but not JSON on the same line.
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        if !text[start..line_end].contains(['{', '[']) {
            start = line_end;
        }
        let end = text[start..].find("```").map_or(text.len(), |i| start + i);
        text[start..end].trim()
    };
    if let Some(open) = lower.find("```json") {
        return fenced(open, 4);
    }
    if let Some(open) = text.find("```") {
        return fenced(open, 0);
    }
    text.trim()
}

/// Parses the answer and checks its evidence against the conversations the model was shown
/// (`shown`: conversation id -> title).
pub(crate) fn parse_answer(text: &str, shown: &BTreeMap<String, String>) -> Result<Answer, ClassifierError> {
    let json = extract_json(text);
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        // Last resort for prose around a bare object: the outermost braces. The serde error of
        // the first attempt is what we report; it names a position, never the answer's text.
        Err(first) => match (json.find('{'), json.rfind('}')) {
            (Some(a), Some(b)) if a < b => serde_json::from_str(&json[a..=b])
                .map_err(|_| ClassifierError::BadAnswer(format!("answer is not JSON: {first}")))?,
            _ => return Err(ClassifierError::BadAnswer(format!("answer is not JSON: {first}"))),
        },
    };
    let Value::Object(obj) = value else {
        return Err(ClassifierError::BadAnswer("answer is not a JSON object".into()));
    };
    let misuse_score = number(obj.get("misuse_score"), "misuse_score")?;
    let confidence = number(obj.get("confidence"), "confidence")?;
    let usage_type = usage_type(obj.get("usage_type"));

    let mut evidence = Vec::new();
    let mut invented_evidence = 0;
    let mut cited = BTreeSet::new();
    let items = match obj.get("evidence") {
        Some(Value::Array(items)) => items.as_slice(),
        // null, missing, or not a list: no evidence (the score still stands on its own).
        _ => &[],
    };
    for item in items {
        let Some(id) = item.get("conversation_id").and_then(id_text) else {
            continue;
        };
        // The model must not invent evidence: a reviewer has to be able to open every cited
        // conversation, so ids we did not show are dropped, and the title is the one the host
        // sent, not the model's retelling of it.
        let Some(title) = shown.get(&id) else {
            invented_evidence += 1;
            continue;
        };
        if !cited.insert(id.clone()) {
            continue;
        }
        let reason = item.get("reason").and_then(Value::as_str).unwrap_or_default().trim();
        evidence.push(Evidence::conversation(
            id,
            title.clone(),
            reason.chars().take(MAX_REASON_CHARS).collect::<String>(),
        ));
    }
    // Kept valid items first, then cut: an invented item must not push out a real one.
    evidence.truncate(MAX_EVIDENCE);
    Ok(Answer { misuse_score, usage_type, confidence, evidence, invented_evidence })
}

/// A score: a number, a numeric string, or null/missing (0.0). Clamping happens on the verdict.
fn number(value: Option<&Value>, field: &str) -> Result<f64, ClassifierError> {
    match value {
        None | Some(Value::Null) => Ok(0.0),
        Some(Value::Number(n)) => {
            n.as_f64().ok_or_else(|| ClassifierError::BadAnswer(format!("{field} is not a finite number")))
        }
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ClassifierError::BadAnswer(format!("{field} is not a number"))),
        Some(_) => Err(ClassifierError::BadAnswer(format!("{field} is not a number"))),
    }
}

/// A usage type the model may give; anything else (null, unknown words, `free_exhausted`) is
/// `unknown`, which never qualifies by itself: the score decides.
fn usage_type(value: Option<&Value>) -> UsageType {
    let Some(text) = value.and_then(Value::as_str) else {
        return UsageType::Unknown;
    };
    let normalized = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    match UsageType::parse(&normalized) {
        Some(t) if MODEL_USAGE_TYPES.contains(&t) => t,
        _ => UsageType::Unknown,
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(ids: &[&str]) -> BTreeMap<String, String> {
        ids.iter().map(|id| (id.to_string(), format!("title of {id}"))).collect()
    }

    #[test]
    fn fences_are_unwrapped() {
        assert_eq!(extract_json("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(extract_json("Here you go:\n```JSON\n{\"a\":1}\n```\nbye"), "{\"a\":1}");
        assert_eq!(extract_json("```\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(extract_json("```javascript\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(extract_json("```{\"a\":1}```"), "{\"a\":1}");
        assert_eq!(extract_json("```json\n{\"a\":1}"), "{\"a\":1}", "an unclosed fence runs to the end");
        assert_eq!(extract_json("  {\"a\":1}  "), "{\"a\":1}");
        // A ```json fence wins over an earlier plain one.
        assert_eq!(extract_json("```\nnotes\n```\n```json\n{\"a\":2}\n```"), "{\"a\":2}");
    }

    #[test]
    fn prose_around_a_bare_object_is_tolerated() {
        let a = parse_answer("My verdict: {\"misuse_score\": 0.4} as asked.", &shown(&[])).unwrap();
        assert_eq!(a.misuse_score, 0.4);
    }

    #[test]
    fn nulls_and_missing_fields_are_safe() {
        let a = parse_answer(
            r#"{"misuse_score":null,"confidence":null,"evidence":null,"usage_type":null}"#,
            &shown(&["c1"]),
        )
        .unwrap();
        assert_eq!((a.misuse_score, a.confidence, a.usage_type), (0.0, 0.0, UsageType::Unknown));
        assert!(a.evidence.is_empty());
        let a = parse_answer("{}", &shown(&[])).unwrap();
        assert_eq!(a.misuse_score, 0.0);
    }

    #[test]
    fn numeric_strings_are_numbers_but_words_are_not() {
        let a = parse_answer(r#"{"misuse_score":"0.8","confidence":" 0.5 "}"#, &shown(&[])).unwrap();
        assert_eq!((a.misuse_score, a.confidence), (0.8, 0.5));
        for bad in [r#"{"misuse_score":"high"}"#, r#"{"misuse_score":true}"#, r#"{"confidence":[1]}"#, "[1,2]", "\"x\""]
        {
            assert!(matches!(parse_answer(bad, &shown(&[])), Err(ClassifierError::BadAnswer(_))), "{bad}");
        }
    }

    #[test]
    fn usage_types_are_normalized_and_the_service_only_type_is_refused() {
        for (given, expected) in [
            ("audiobook", UsageType::Audiobook),
            ("TV-Movie", UsageType::TvMovie),
            ("tv movie", UsageType::TvMovie),
            (" Podcast ", UsageType::Podcast),
            ("free_exhausted", UsageType::Unknown),
            ("radio", UsageType::Unknown),
        ] {
            let a = parse_answer(&format!(r#"{{"usage_type":"{given}"}}"#), &shown(&[])).unwrap();
            assert_eq!(a.usage_type, expected, "{given}");
        }
    }

    #[test]
    fn evidence_is_checked_deduplicated_and_bounded() {
        let ids: Vec<String> = (0..15).map(|i| format!("c{i}")).collect();
        let known = shown(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let mut items: Vec<Value> = vec![
            serde_json::json!({"conversation_id": "made-up", "title": "x", "reason": "y"}),
            serde_json::json!({"conversation_id": "c0", "title": "model's title", "reason": "r".repeat(1000)}),
            serde_json::json!({"conversation_id": "c0", "title": "dup", "reason": "dup"}),
            serde_json::json!("not an object"),
            serde_json::json!({"title": "no id"}),
        ];
        items.extend((1..15).map(|i| serde_json::json!({"conversation_id": format!("c{i}"), "reason": null})));
        let text = serde_json::json!({"misuse_score": 0.9, "evidence": items}).to_string();
        let a = parse_answer(&text, &known).unwrap();
        assert_eq!(a.evidence.len(), MAX_EVIDENCE);
        assert_eq!(a.invented_evidence, 1);
        assert_eq!(a.evidence[0].conversation_id, "c0");
        assert_eq!(a.evidence[0].title, "title of c0", "the host's title, not the model's");
        assert_eq!(a.evidence[0].reason.chars().count(), MAX_REASON_CHARS);
        assert_eq!(a.evidence[1].conversation_id, "c1");
        assert_eq!(a.evidence[1].reason, "");
    }
}
