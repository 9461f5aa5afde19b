//! `fairuse match A.wav B.wav [--json]` on audio synthesised at test time with espeak-ng and sox
//! (`bash scripts/test` installs both; the test fails, never skips, without them). The matching
//! itself is tested in depth in crates/fairuse-fingerprint/tests/matching.rs; this checks the
//! command: its JSON, its exit status either way, and its errors for unreadable input.

mod common;

use std::path::Path;
use std::process::Output;

use fairuse_test_audio::{TempDir, sox, speak};

const TEXT: &str = "The quarterly report shows that revenue grew in every region, while costs stayed flat. \
    Our team will present the details at the meeting next Tuesday.";
const OTHER_TEXT: &str =
    "Yesterday the weather was cold and windy, so most people stayed inside and read books by the fire.";
/// Other talk before the replayed text in B.
const LEAD_MS: i64 = 2_500;

fn fairuse_match(args: &[&str]) -> Output {
    common::fairuse_command().arg("match").args(args).output().expect("run fairuse")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "fairuse match failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn match_reports_a_replay_with_its_offset_and_a_different_text_as_no_match() {
    let dir = TempDir::new("replay");
    let a = speak(&dir, "a", "en-us", TEXT);
    let talk = speak(&dir, "talk", "en-us+m3", OTHER_TEXT);
    let lead = dir.file("lead.wav");
    sox(&[&talk, &lead, "trim", "0", &format!("{:.3}", LEAD_MS as f64 / 1000.0)]);
    // B: other talk, then A replayed at 44.1 kHz stereo, 6 dB down, with reverb.
    let b = dir.file("b.wav");
    sox(&[&lead, &a, "-r", "44100", "-c", "2", "-b", "16", &b, "gain", "-6", "reverb", "50"]);

    let found = json_of(&fairuse_match(&["--json", &a, &b]));
    assert_eq!(found["match"], true, "{found}");
    let offset = found["offset_ms"].as_i64().expect("offset_ms is an integer");
    assert!((offset - LEAD_MS).abs() <= 248, "offset {offset} ms, expected {LEAD_MS} ± 248: {found}");
    assert!(found["shared_ms"].as_u64().expect("shared_ms") >= 3_000, "{found}");
    let score = found["score"].as_f64().expect("score");
    assert!((0.7..=1.0).contains(&score), "{found}");

    // Exit 0 and match false for unrelated speech.
    let other = json_of(&fairuse_match(&["--json", &a, &talk]));
    assert_eq!(other["match"], false, "{other}");

    // The plain output says the same in words.
    let plain = fairuse_match(&[&a, &b]);
    assert!(plain.status.success());
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.starts_with("match: "), "{text}");
}

#[test]
fn unreadable_or_non_wav_input_fails_naming_the_file() {
    let dir = TempDir::new("bad");
    let not_wav = dir.file("notes.wav");
    std::fs::write(&not_wav, "these are notes, not audio").unwrap();
    let missing = dir.file("missing.wav");
    for (bad, why) in [(&not_wav, "RIFF"), (&missing, "No such file")] {
        let out = fairuse_match(&["--json", bad, bad]);
        assert!(!out.status.success(), "{bad} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        let name = Path::new(bad).file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name) && err.contains(why), "{err}");
        assert!(out.stdout.is_empty(), "nothing on stdout on error");
    }
}
