//! Strict JSON bodies: exactly one value (trailing data is an error, not ignored), no object with
//! the same key twice (serde_json keeps the last one silently), and every error naming the field
//! it is about (`reports[1].lane`), or `body` when it is about the body as a whole. A host must
//! never believe a report was stored when part of its body was dropped.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use fairuse_domain::InputError;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// The field a whole-body error names.
pub const BODY_FIELD: &str = "body";

/// Parses one JSON value of type `T` from `bytes`, strictly (see the module documentation).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    // Most bodies are valid: the fast pass answers them without tracking where it is. Anything
    // it refuses is parsed again by the tracking pass, whose error names the field.
    match try_parse(bytes) {
        Some(value) => Ok(value),
        None => parse_tracked(bytes),
    }
}

/// [`parse`] when `bytes` is valid, and `None` (without saying why) when it is not: the typed
/// pass without path tracking, the end of the text, and the repeated-key check. A body this
/// accepts is one [`parse`] accepts, with the same value.
pub fn try_parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut de).ok()?;
    de.end().ok()?;
    duplicate_key(bytes).is_none().then_some(value)
}

/// [`parse`] with every error named by its field (serde_path_to_error records the path of each
/// value it passes, which costs a key copy per field: only for bodies the fast pass refused).
fn parse_tracked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        typed_error(&path, e.into_inner())
    })?;
    de.end().map_err(|e| InputError::new(BODY_FIELD, format!("body is not valid: {e}")))?;
    // Typed first, so a bad value is named by the field it is in; then the whole text again for
    // keys that appear twice (the typed pass cannot see them inside untagged or free-form parts).
    if let Some(field) = duplicate_key(bytes) {
        return Err(InputError::new(field, "duplicate key: give each field once"));
    }
    Ok(value)
}

/// The error of the typed pass, named by field. serde reports a missing or repeated struct field
/// at the struct's path with the field's name in the message, so the name is joined to the path.
fn typed_error(path: &str, inner: serde_json::Error) -> InputError {
    let message = inner.to_string();
    let at_root = path == "." || path == "?" || path.is_empty();
    for prefix in ["missing field `", "duplicate field `"] {
        if let Some(name) = message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()) {
            let field = if at_root { name.to_owned() } else { format!("{path}.{name}") };
            let what = if prefix.starts_with("missing") { "missing" } else { "duplicate key: give each field once" };
            return InputError::new(field, what);
        }
    }
    if at_root {
        InputError::new(BODY_FIELD, format!("body is not valid: {message}"))
    } else {
        InputError::new(path, message)
    }
}

/// The path of the first key that appears twice in one object of `bytes`, if any. Only called on
/// text that already parsed as JSON.
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // An error here is either the duplicate (recorded in `found`) or a limit of the checker that
    // the typed pass did not hit; in the latter case there is no duplicate to report.
    let _ = UniqueKeys { at: At::Root, found: &found }.deserialize(&mut de);
    found.into_inner()
}

/// Where a value is in the text: its path is only written out when a duplicate is found there,
/// so checking a body that has none allocates nothing but its objects' key lists.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// `a.b[2].c`: keys joined by dots, indexes in brackets, the root empty.
    fn write(&self, out: &mut String) {
        match self {
            At::Root => {}
            At::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            At::Index(parent, i) => {
                parent.write(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
}

/// Objects with more keys than this are checked with a hash set, smaller ones by a scan.
const SCAN_KEYS: usize = 16;

/// Visits any JSON value and fails at the first object that repeats a key, recording its path.
struct UniqueKeys<'a> {
    at: At<'a>,
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            if seq.next_element_seed(UniqueKeys { at: At::Index(&self.at, i), found: self.found })?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are compared unescaped, borrowed from the text when they have no escapes.
        let mut scanned: Vec<Cow<'de, str>> = Vec::new();
        let mut hashed: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = match &hashed {
                Some(set) => set.contains(&key),
                None => scanned.contains(&key),
            };
            if repeated {
                let mut path = String::new();
                At::Key(&self.at, &key).write(&mut path);
                *self.found.borrow_mut() = Some(path);
                return Err(A::Error::custom("duplicate key"));
            }
            map.next_value_seed(UniqueKeys { at: At::Key(&self.at, &key), found: self.found })?;
            match &mut hashed {
                Some(set) => {
                    set.insert(key);
                }
                None => {
                    scanned.push(key);
                    if scanned.len() > SCAN_KEYS {
                        hashed = Some(scanned.drain(..).collect());
                    }
                }
            }
        }
        Ok(())
    }
}

/// An object key as text, borrowed from the input when it needs no unescaping.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn duplicates_are_found_at_any_depth_and_named_by_path() {
        assert_eq!(duplicate_key(br#"{"a":1,"a":2}"#), Some("a".into()));
        assert_eq!(duplicate_key(br#"{"r":[{"x":1},{"x":1,"y":[],"x":3}]}"#), Some("r[1].x".into()));
        assert_eq!(duplicate_key(br#"{"a":{"b":{"c":1,"c":1}}}"#), Some("a.b.c".into()));
        assert_eq!(duplicate_key(br#"{"a":1,"b":{"a":1}}"#), None, "the same key in two objects is fine");
        assert_eq!(duplicate_key(br#"{"\u0061":1,"a":2}"#), Some("a".into()), "keys compare unescaped");
    }

    #[test]
    fn trailing_data_and_missing_fields_name_what_is_wrong() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            uid: String,
        }
        let e = parse::<R>(br#"{"uid":"a"}{"uid":"b"}"#).unwrap_err();
        assert_eq!(e.field, BODY_FIELD);
        assert!(e.message.contains("trailing"), "{e}");
        assert_eq!(parse::<R>(br#"{}"#).unwrap_err().field, "uid");
        assert_eq!(parse::<R>(br#"{"uid":"a","uid":"b"}"#).unwrap_err().field, "uid");
        assert_eq!(parse::<R>(b"{\"uid\":\"a\"}\r\n ").unwrap().uid, "a");
    }

    /// JSON values with small key sets, so that generated objects often repeat a key.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,3}".prop_map(Value::from)
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c]", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Writes `v` with the first key of the first non-empty object repeated, if there is one.
    fn with_duplicate(v: &Value, done: &mut bool) -> String {
        match v {
            Value::Object(m) => {
                let mut parts: Vec<String> =
                    m.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), with_duplicate(v, done))).collect();
                if !*done && let Some((k, v)) = m.iter().next() {
                    *done = true;
                    parts.push(format!("{}:{}", Value::from(k.as_str()), v));
                }
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(a) => format!("[{}]", a.iter().map(|x| with_duplicate(x, done)).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn a_body_parses_strictly_exactly_when_it_is_one_value_without_repeated_keys(v in json_value(), tail in "[ \t\r\n]{1,2}([a-z{}\\[\\],0-9\"]{1,3})?") {
            // serde_json's own output never repeats a key: it parses, with whitespace after it.
            let text = v.to_string();
            prop_assert_eq!(parse::<Value>(format!("{text} \n").as_bytes()).ok(), Some(v.clone()));
            // Anything but whitespace after it is refused as a whole-body error.
            let with_tail = format!("{text}{tail}");
            let parsed = parse::<Value>(with_tail.as_bytes());
            if tail.trim().is_empty() {
                prop_assert!(parsed.is_ok());
            } else {
                prop_assert_eq!(parsed.map_err(|e| e.field), Err(BODY_FIELD.to_owned()));
            }
            // A repeated key is refused and named; the same text without it is accepted.
            let mut done = false;
            let dup = with_duplicate(&v, &mut done);
            let parsed = parse::<Value>(dup.as_bytes());
            if done {
                let e = parsed.unwrap_err();
                prop_assert!(e.message.contains("duplicate"), "{}", e);
                prop_assert!(!e.field.is_empty() && e.field != BODY_FIELD, "{}", e);
            } else {
                prop_assert!(parsed.is_ok());
            }
        }
    }
}
