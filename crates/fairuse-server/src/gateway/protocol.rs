//! The client side of the Deepgram live protocol: the audio format in the query, the control
//! messages on the stream, and errors in Deepgram's shape.

use axum::extract::ws::Message;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// The audio format of a stream, from the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Format {
    pub(super) sample_rate: u32,
    pub(super) channels: u16,
}

pub(super) fn parse_format(query: &str) -> ApiResult<Format> {
    let mut encoding = None;
    let mut sample_rate = None;
    let mut channels = None;
    for (k, v) in form_pairs(query) {
        match k.as_str() {
            "encoding" => encoding = Some(v),
            "sample_rate" => sample_rate = Some(v),
            "channels" => channels = Some(v),
            _ => {}
        }
    }
    let bad = |field: &str, msg: String| ApiError::Input(fairuse_domain::InputError::new(field, msg));
    match encoding.as_deref() {
        Some("linear16") => {}
        Some(other) => return Err(bad("encoding", format!("only linear16 is supported, got {other:?}"))),
        None => return Err(bad("encoding", "is required and must be linear16".into())),
    }
    let sample_rate = match sample_rate.as_deref() {
        None => return Err(bad("sample_rate", "is required (8000-48000)".into())),
        Some(s) => match s.parse::<u32>() {
            Ok(r) if (8000..=48000).contains(&r) => r,
            _ => return Err(bad("sample_rate", format!("must be a number from 8000 to 48000, got {s:?}"))),
        },
    };
    let channels = match channels.as_deref() {
        None => 1,
        Some("1") => 1,
        Some("2") => 2,
        Some(c) => return Err(bad("channels", format!("must be 1 or 2, got {c:?}"))),
    };
    Ok(Format { sample_rate, channels })
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A control message from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Control {
    KeepAlive,
    Finalize,
    CloseStream,
}

pub(super) fn parse_control(text: &str) -> Result<Control, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("text frame is not JSON: {e}"))?;
    match v.get("type").and_then(Value::as_str) {
        Some("KeepAlive") => Ok(Control::KeepAlive),
        Some("Finalize") => Ok(Control::Finalize),
        Some("CloseStream") => Ok(Control::CloseStream),
        Some(other) => Err(format!("unknown message type {other:?}; expected KeepAlive, Finalize or CloseStream")),
        None => Err("text frame has no \"type\"; expected KeepAlive, Finalize or CloseStream".into()),
    }
}

/// An error in Deepgram's shape (`variant`, `description`), so Deepgram SDKs parse it; `message`
/// repeats the description for clients that read that field.
pub(super) fn error_message(variant: &str, description: &str) -> Message {
    let v = json!({"type": "Error", "variant": variant, "description": description, "message": description});
    Message::Text(v.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_linear16_with_a_rate_in_range_and_one_or_two_channels_is_accepted() {
        assert_eq!(
            parse_format("encoding=linear16&sample_rate=16000&channels=2&model=nova-3").unwrap(),
            Format { sample_rate: 16000, channels: 2 }
        );
        assert!(parse_format("encoding=opus&sample_rate=16000").is_err());
        assert!(parse_format("sample_rate=16000").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=7999").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=48001").is_err());
        assert!(parse_format("encoding=linear16&sample_rate=16000&channels=3").is_err());
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn control_messages_are_recognised_and_others_refused() {
        assert_eq!(parse_control(r#"{"type":"KeepAlive"}"#), Ok(Control::KeepAlive));
        assert_eq!(parse_control(r#"{"type":"Finalize"}"#), Ok(Control::Finalize));
        assert_eq!(parse_control(r#"{"type":"CloseStream"}"#), Ok(Control::CloseStream));
        assert!(parse_control(r#"{"type":"Nope"}"#).is_err());
        assert!(parse_control("hello").is_err());
    }
}
