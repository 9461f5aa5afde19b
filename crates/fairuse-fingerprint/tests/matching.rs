//! Matching on speech synthesised at test time with espeak-ng and sox in a temporary directory, and a
//! golden comparison of the codes with Debian's `fpcalc`. Nothing here is committed audio; the tools
//! must be installed (`apt-get install espeak-ng sox libchromaprint-tools`, or run `bash scripts/test`)
//! and the tests fail, never skip, when one is missing. Run with `--nocapture` for the tables.
//!
//! - A: one of [`TEXTS`] read by espeak-ng (`en-us`, 165 wpm), 16 kHz mono.
//! - The replay of A: [`LEAD_MS`] of other talk, A, then 4 s more other talk; converted to 44.1 kHz
//!   stereo, −6 dB, sox `reverb 50`, plus pink noise at 15 dB below the speech RMS. It must match A
//!   with B's shared part [`LEAD_MS`] later (± two codes, 248 ms), in both directions.
//! - A with other talk mixed 10 dB under it, at 16 kHz: must match at offset 0 ± two codes.
//! - Must not match: A's text in three other espeak voices, other texts (clean and replayed), silence,
//!   steady tones, a sweep, DTMF digits and mains hum, each against itself and against speech.

use std::sync::OnceLock;

use fairuse_fingerprint::{Comparison, Fingerprint, ITEM_MS, MatchThresholds, compare, fingerprint_wav};
use fairuse_test_audio::{INSTALL_HINT, TempDir, run, sox, speak};
use std::process::Command;

#[rustfmt::skip]
const TEXTS: [&str; 3] = [
    "The quarterly report shows that revenue grew in every region, while costs stayed flat. Our team will present the details at the meeting next Tuesday.",
    "Chapter three. The old lighthouse keeper climbed the stairs slowly, counting each step, as he had done every evening for forty years.",
    "In this lesson we will learn how plants turn sunlight into energy, a process called photosynthesis, which happens in the leaves.",
];
/// The talk around and under the replays: other words, another voice.
const OTHER_TALK: &str = "Yesterday the weather was cold and windy, so most people stayed inside and read books by the fire. \
    To reset your password, open the settings page, choose security, and follow the instructions sent to your email address.";
const VOICE: &str = "en-us";
const OTHER_VOICES: [&str; 3] = ["en-us+f3", "en-gb", "en-us+m3"];
/// Other talk before A in the replay.
const LEAD_MS: i64 = 3_300;
const SNR_DB: f64 = 15.0;
/// Offsets must be right within this (two codes).
const OFFSET_TOLERANCE_MS: i64 = 248;

fn require_tools() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        fairuse_test_audio::require_tools(&[("espeak-ng", "--version"), ("sox", "--version"), ("fpcalc", "-version")])
    });
}

struct Corpus {
    /// Keeps the files alive while the tests run.
    _dir: TempDir,
    /// A for each text: clean, 16 kHz mono.
    clean: Vec<Fingerprint>,
    /// The replay of each text through the other channel, inside other talk.
    replayed: Vec<Fingerprint>,
    /// Each text with other talk 10 dB under it.
    talked_over: Vec<Fingerprint>,
    /// Text 0 in each of [`OTHER_VOICES`].
    other_voices: Vec<(String, Fingerprint)>,
    /// Silence, tones, hum: (label, as generated at 16 kHz, through the replay channel).
    steady: Vec<(String, Fingerprint, Fingerprint)>,
    /// Paths kept for the golden comparison.
    golden_11k: String,
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(build_corpus)
}

/// The replay channel: 44.1 kHz stereo, −6 dB, reverb, pink noise at [`SNR_DB`].
fn replay_channel(dir: &TempDir, name: &str, input: &str) -> String {
    fairuse_test_audio::replay_channel(dir, name, input, SNR_DB)
}

fn build_corpus() -> Corpus {
    require_tools();
    let dir = TempDir::new("corpus");
    let talk = speak(&dir, "talk", "en-us+m3", OTHER_TALK);
    let lead = dir.file("lead.wav");
    let tail = dir.file("tail.wav");
    sox(&[&talk, &lead, "trim", "0", &format!("{:.3}", LEAD_MS as f64 / 1000.0)]);
    sox(&[&talk, &tail, "trim", "8", "4"]);
    let golden_11k = dir.file("golden-11k.wav");
    let (mut clean, mut replayed, mut talked_over, mut other_voices, mut steady) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (t, text) in TEXTS.iter().enumerate() {
        let a = speak(&dir, &format!("a{t}"), VOICE, text);
        clean.push(fingerprint(&a));
        let inside = dir.file(&format!("inside{t}.wav"));
        sox(&[&lead, &a, &tail, &inside]);
        replayed.push(fingerprint(&replay_channel(&dir, &format!("replay{t}"), &inside)));
        // Other talk from 12 s on, 10 dB under A, as long as A.
        let under = dir.file(&format!("under{t}.wav"));
        let a_seconds = run("soxi", &["-D", &a]).trim().parse::<f64>().expect("soxi -D prints seconds");
        sox(&[&talk, &under, "trim", "12", &format!("{a_seconds:.3}"), "pad", "0", "5", "gain", "-10"]);
        let over = dir.file(&format!("over{t}.wav"));
        sox(&["-m", "-v", "1", &a, "-v", "1", &under, &over, "trim", "0", &format!("{a_seconds:.3}")]);
        talked_over.push(fingerprint(&over));
        if t == 0 {
            sox(&[&a, &golden_11k, "rate", "11025"]);
        }
    }
    for (v, voice) in OTHER_VOICES.iter().enumerate() {
        let path = speak(&dir, &format!("voice{v}"), voice, TEXTS[0]);
        other_voices.push((voice.to_string(), fingerprint(&path)));
    }
    let sounds: [(&str, &[&str]); 6] = [
        ("silence", &["trim", "0", "12"]),
        ("440 Hz sine", &["synth", "12", "sine", "440", "vol", "0.5"]),
        ("chord 220+277+330 Hz", &["synth", "12", "sine", "220", "sine", "277", "sine", "330", "vol", "0.3"]),
        ("sweep 200-3000 Hz", &["synth", "12", "sine", "200-3000", "vol", "0.5"]),
        ("50 Hz hum with harmonics", &["synth", "12", "square", "50", "vol", "0.2", "lowpass", "1000"]),
        (
            "DTMF 697+1209 / 852+1336 Hz",
            &[
                "synth", "0.3", "sine", "697", "sine", "1209", "vol", "0.4", "pad", "0", "0.2", "repeat", "11", ":",
                "synth", "0.3", "sine", "852", "sine", "1336", "vol", "0.4", "pad", "0", "0.2", "repeat", "11",
            ],
        ),
    ];
    for (s, (label, effects)) in sounds.iter().enumerate() {
        let path = dir.file(&format!("steady{s}.wav"));
        let mut args = vec!["-n", "-r", "16000", "-c", "1", "-b", "16", path.as_str()];
        args.extend_from_slice(effects);
        sox(&args);
        let chan = dir.file(&format!("steady{s}-channel.wav"));
        sox(&[&path, "-r", "44100", "-c", "2", "-b", "16", &chan, "gain", "-6", "reverb", "50"]);
        steady.push((label.to_string(), fingerprint(&path), fingerprint(&chan)));
    }
    Corpus { _dir: dir, clean, replayed, talked_over, other_voices, steady, golden_11k }
}

fn fingerprint(path: &str) -> Fingerprint {
    fingerprint_wav(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Mean bit errors per code over the speech codes of both, at the shift where that is lowest among
/// shifts overlapping at least 3 s of speech: an exhaustive search, for measuring margins.
fn best_alignment_bit_errors(a: &Fingerprint, b: &Fingerprint) -> f64 {
    let min_pairs = (3000.0 / ITEM_MS) as usize;
    let mut best = f64::MAX;
    for shift in -(a.len() as i64)..b.len() as i64 {
        let (mut pairs, mut errors) = (0usize, 0u32);
        for i in 0..a.len() {
            let j = i as i64 + shift;
            if (0..b.len() as i64).contains(&j) && a.speech()[i] && b.speech()[j as usize] {
                pairs += 1;
                errors += (a.codes()[i] ^ b.codes()[j as usize]).count_ones();
            }
        }
        if pairs >= min_pairs {
            best = best.min(f64::from(errors) / pairs as f64);
        }
    }
    best
}

fn check(label: &str, a: &Fingerprint, b: &Fingerprint) -> Comparison {
    let found = compare(a, b, MatchThresholds::default());
    println!(
        "{label:<48} match {:<5} offset {:>6} ms  shared {:>6} ms (speech {:>6})  bit errors {:>5.2}  score {:.2}",
        found.matched, found.offset_ms, found.shared_ms, found.shared_speech_ms, found.mean_bit_errors, found.score
    );
    found
}

#[test]
fn replays_through_another_channel_inside_other_talk_match_at_the_right_offset() {
    let c = corpus();
    for (t, (a, b)) in c.clean.iter().zip(&c.replayed).enumerate() {
        let found = check(&format!("text {t} vs its replay"), a, b);
        assert!(found.matched, "text {t}: the replay should match: {found:?}");
        assert!((found.offset_ms - LEAD_MS).abs() <= OFFSET_TOLERANCE_MS, "text {t}: offset {found:?}");
        // Nearly all of A's speech is found shared.
        assert!(
            found.shared_speech_ms as f64 >= 0.6 * a.speech_ms() as f64,
            "text {t}: {found:?} of {} ms",
            a.speech_ms()
        );
        let back = check(&format!("replay of text {t} vs text {t}"), b, a);
        assert!(back.matched, "text {t} reversed: {back:?}");
        assert!((back.offset_ms + LEAD_MS).abs() <= OFFSET_TOLERANCE_MS, "text {t} reversed: {back:?}");
    }
}

#[test]
fn speech_with_other_talk_under_it_matches_at_offset_zero() {
    let c = corpus();
    for (t, (a, b)) in c.clean.iter().zip(&c.talked_over).enumerate() {
        let found = check(&format!("text {t} vs text {t} with talk under it"), a, b);
        assert!(found.matched, "text {t}: {found:?}");
        assert!(found.offset_ms.abs() <= OFFSET_TOLERANCE_MS, "text {t}: {found:?}");
    }
}

#[test]
fn the_same_words_in_another_voice_do_not_match() {
    let c = corpus();
    for (voice, b) in &c.other_voices {
        let found = check(&format!("text 0 vs text 0 read by {voice}"), &c.clean[0], b);
        assert!(!found.matched, "{voice}: {found:?}");
    }
    // Not only "no candidate shift": at the best of all shifts another voice is still far from a
    // replay, which is the margin the thresholds rely on.
    let worst_replay =
        c.clean.iter().zip(&c.replayed).map(|(a, b)| best_alignment_bit_errors(a, b)).fold(0.0, f64::max);
    let closest_voice =
        c.other_voices.iter().map(|(_, b)| best_alignment_bit_errors(&c.clean[0], b)).fold(f64::MAX, f64::min);
    let threshold = MatchThresholds::default().match_bits;
    println!(
        "best-alignment bit errors: worst replay {worst_replay:.2}, closest other voice {closest_voice:.2}, limit {threshold}"
    );
    assert!(
        worst_replay < threshold && closest_voice > threshold + 1.0,
        "replays {worst_replay:.2} vs voices {closest_voice:.2}"
    );
}

#[test]
fn different_texts_do_not_match_clean_or_replayed() {
    let c = corpus();
    for t in 0..TEXTS.len() {
        for u in (0..TEXTS.len()).filter(|&u| u != t) {
            let clean = check(&format!("text {t} vs text {u}"), &c.clean[t], &c.clean[u]);
            assert!(!clean.matched, "{t} vs {u}: {clean:?}");
            let replayed = check(&format!("text {t} vs replay of text {u}"), &c.clean[t], &c.replayed[u]);
            assert!(!replayed.matched, "{t} vs replay of {u}: {replayed:?}");
        }
    }
}

#[test]
fn silence_tones_and_hum_never_match_themselves_or_speech() {
    let c = corpus();
    for (label, raw, channel) in &c.steady {
        for (what, a, b) in [
            ("itself", raw, raw),
            ("its replay", raw, channel),
            ("text 0", raw, &c.clean[0]),
            ("replay of text 0", channel, &c.replayed[0]),
        ] {
            let found = check(&format!("{label} vs {what}"), a, b);
            assert!(!found.matched, "{label} vs {what}: {found:?}");
        }
    }
}

/// Our codes against Debian's fpcalc (Chromaprint 1.5, algorithm 2) on the same 11 025 Hz file,
/// where neither resamples: the port should agree nearly bit for bit.
#[test]
fn codes_agree_with_fpcalc() {
    let c = corpus();
    let ours = fingerprint(&c.golden_11k);
    // fpcalc 1.5.1 with FFmpeg 5 exits 3 ("Error decoding audio frame (End of file)") after printing
    // a complete fingerprint of a WAV file; the fingerprint is checked below, not the exit status.
    let out = Command::new("fpcalc")
        .args(["-raw", "-plain", "-algorithm", "2", &c.golden_11k])
        .output()
        .unwrap_or_else(|e| panic!("cannot run fpcalc ({e}); {INSTALL_HINT}"));
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let theirs: Vec<u32> = out
        .trim()
        .split(',')
        .map(|v| v.trim().parse::<i64>().unwrap_or_else(|e| panic!("fpcalc printed {v:?}: {e}")) as u32)
        .collect();
    assert!(theirs.len() > 20, "fpcalc gave {} codes", theirs.len());
    let n = ours.len().min(theirs.len());
    assert!(n > 20, "fpcalc gave {} codes, we {}", theirs.len(), ours.len());
    let errors: u32 = ours.codes()[..n].iter().zip(&theirs[..n]).map(|(a, b)| (a ^ b).count_ones()).sum();
    let mean = f64::from(errors) / n as f64;
    println!("fpcalc: {} codes, ours {}, mean bit errors over {n}: {mean:.3}", theirs.len(), ours.len());
    assert!((ours.len() as i64 - theirs.len() as i64).abs() <= 2, "lengths {} vs {}", ours.len(), theirs.len());
    assert!(mean < 1.0, "mean bit errors {mean:.3} against fpcalc");
    // One code is ITEM_MS of audio: the file's length over the code count agrees.
    let seconds: f64 = run("soxi", &["-D", &c.golden_11k]).trim().parse().expect("soxi -D prints seconds");
    let expected = ((seconds * 1000.0 - 2700.0) / ITEM_MS).round() as i64;
    assert!((ours.len() as i64 - expected).abs() <= 3, "{} codes for {seconds} s", ours.len());
}
