//! Acoustic fingerprints of speech, and the matcher that finds time-shifted shared content.
//!
//! Live conversation never happens twice: two recordings that share a run of the same audio are
//! recorded media (issue 11). This crate turns audio into a compact code stream and compares two
//! streams: do they share content, where does it start in each, for how long.
//!
//! # What a fingerprint is
//!
//! [Chromaprint](https://acoustid.org/chromaprint)'s codes, computed by `rusty-chromaprint` (a
//! pure-Rust port, MIT; Debian's `fpcalc` gives the same codes, which the tests check): audio is
//! downmixed and resampled to 11 025 Hz, a 4096-point FFT every 1365 samples is folded into 12 chroma
//! bands (28–3520 Hz), and 16 fixed classifiers over a sliding ~2.7 s chroma image give one 32-bit
//! code every [`ITEM_MS`] (123.8 ms). Each code is paired with a *speech* flag from the meter's VAD
//! (Silero, [`fairuse_vad`]): a code counts only when most of the audio it summarises is speech.
//!
//! # Why Chromaprint and not a landmark hash
//!
//! Chroma is tuned to music, so we measured it on speech first: five espeak-ng texts (en-us, 165
//! wpm), each compared by mean bit errors per 32-bit code at the best alignment (`tests/matching.rs`
//! repeats this on three of the texts and prints the table with `--nocapture`):
//!
//! | B, compared with the clean 16 kHz utterance A | mean bit errors / 32 |
//! |---|---|
//! | A replayed: 44.1 kHz stereo, −6 dB, reverb, pink noise at 15 dB SNR, inside other talk | 2.0–2.4 |
//! | A with other talk mixed under it (10 dB below) | 0.1–2.7 |
//! | the same text in another espeak voice (en-us+f3, en-gb, en-us+m3) | 6.9–13.8 |
//! | another text, either voice or replayed | ≈ 9–16 |
//!
//! The same recording and the same words in another voice are separated by a factor of ~2.5 at
//! the worst pair, so the port is used as it is and no landmark (spectral peak pair) hash was written.
//! Chroma folds pitch into 12 classes and the classifiers look at ~2 s of it, so another voice (other
//! pitch contour, other timing) gives other codes while channel changes (gain, rate, reverb, noise)
//! keep most bits. The offset resolution is one code, 124 ms.
//!
//! # Silence, tones and hum never match
//!
//! Three guards: (1) only codes the VAD calls speech are counted (its accuracy tests count 0 ms on
//! tones, hum, noise and silence, at most 192 ms at a sustained chord's onset); (2) a run must hold
//! at least [`MIN_SHARED_SPEECH_MS`] of such codes; (3) the codes must keep changing
//! ([`MIN_CHANGE_SHARE`]): a steady tone or silence gives the same code over and over, which says
//! nothing about its source. In `tests/matching.rs` guard (1) alone already stops every silence,
//! tone, sweep, DTMF and hum case; guard (3) is tested on its own in the matcher's unit tests.
//!
//! # Privacy: fingerprints cannot be turned back into speech
//!
//! A code is 32 bits per 124 ms (258 bit/s): each bit is the sign-and-threshold of a difference of
//! chroma energy sums over ~2 s, 12 pitch classes with octaves folded together. Formants, spectral
//! envelope and phase are gone; no inversion recovers words from it (telephone speech needs ~2 kbit/s
//! with a codec designed for it). What remains says "this audio is the same as that audio", nothing
//! about what was said; of who said it, at most a coarse trace of pitch.
//!
//! This crate depends on `fairuse-vad` and `rusty-chromaprint` only: no async runtime, no network, no
//! other fairuse crate.

// One audited `unsafe impl Send` (on `FingerprintStream`, see there); nothing else.
#![deny(unsafe_code)]

mod matcher;

use std::path::Path;

use fairuse_vad::{SpeechMeter, VadError, WINDOW_MS, WavPcm16};
use rusty_chromaprint::{Configuration, Fingerprinter};

pub use matcher::{Comparison, MIN_CHANGE_SHARE, MIN_SHARED_SPEECH_MS, MatchThresholds, compare};

/// Chromaprint's working rate.
const CHROMA_RATE: u32 = 11_025;
/// Samples at [`CHROMA_RATE`] between consecutive codes (Chromaprint's frame minus its overlap).
const ITEM_SAMPLES: u32 = 1365;
/// Milliseconds between consecutive codes.
pub const ITEM_MS: f64 = ITEM_SAMPLES as f64 * 1000.0 / CHROMA_RATE as f64;
/// Audio one code summarises: 20 FFT frames of 4096 samples stepped by 1365 (5 for the chroma filter
/// and 16 for the widest classifier, overlapping by one), ~2.7 s from the code's start.
const ITEM_SPAN_MS: f64 = (19 * ITEM_SAMPLES + 4096) as f64 * 1000.0 / CHROMA_RATE as f64;
/// A code is speech when at least this share of the VAD windows it spans are speech.
const SPEECH_SHARE_PER_ITEM: f64 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("sample rate {0} Hz is not supported (8000-48000)")]
    UnsupportedSampleRate(u32),
    #[error("{0} channels are not supported (1 or 2)")]
    UnsupportedChannels(u16),
    #[error(transparent)]
    Audio(#[from] VadError),
}

/// The fingerprint of one recording or stream: a code every [`ITEM_MS`] and whether it is speech.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    codes: Vec<u32>,
    speech: Vec<bool>,
}

impl Fingerprint {
    /// Codes with their speech flags, e.g. from a store; the two must be of equal length.
    pub fn from_parts(codes: Vec<u32>, speech: Vec<bool>) -> Option<Self> {
        (codes.len() == speech.len()).then_some(Self { codes, speech })
    }

    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// One flag per code: most of the audio it summarises is speech.
    pub fn speech(&self) -> &[bool] {
        &self.speech
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Speech codes × [`ITEM_MS`].
    pub fn speech_ms(&self) -> u64 {
        (self.speech.iter().filter(|&&s| s).count() as f64 * ITEM_MS) as u64
    }
}

/// Fingerprinting state for one audio stream: feed it interleaved PCM16 with [`push`](Self::push)
/// and the VAD's per-window verdicts with [`mark_window`](Self::mark_window) (the gateway already
/// runs the VAD; [`fingerprint_wav`] runs it here).
pub struct FingerprintStream {
    printer: Fingerprinter,
    channels: u16,
    /// A left sample whose right sample is in the next chunk (stereo only): Chromaprint asserts
    /// whole frames, network chunks need not be.
    half_frame: Option<i16>,
    joined: Vec<i16>,
    /// The VAD's verdict on each 32 ms window so far.
    windows: Vec<bool>,
    /// Codes already handed out by [`take_speech_codes`](Self::take_speech_codes).
    taken: usize,
}

// SAFETY: `Fingerprinter` is not `Send` only because rusty-chromaprint 0.3.0 erases its pipeline
// into a `Box<dyn AudioConsumer>` without a `Send` bound. The one concrete pipeline it builds
// (`Fft<Chroma<ChromaFilter<ChromaNormalizer<FingerprintCalculator>>>>` behind an
// `AudioProcessor` with an optional `rubato::SincFixedIn`) holds only owned buffers, plain data,
// an `Arc<dyn rustfft::Fft<f64>>` (rustfft requires `Fft: Send + Sync`) and a
// `Box<dyn rubato::SincInterpolator>` (rubato requires `Send`): no `Rc`, `Cell` or raw pointer.
// The dependency is pinned to `=0.3.0` so an upgrade re-opens this review. The gateway moves a
// stream's meter between tokio worker threads, never shares it.
#[allow(unsafe_code)]
unsafe impl Send for FingerprintStream {}

impl std::fmt::Debug for FingerprintStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintStream")
            .field("channels", &self.channels)
            .field("codes", &self.printer.fingerprint().len())
            .field("windows", &self.windows.len())
            .finish()
    }
}

impl FingerprintStream {
    /// A stream of interleaved 16-bit PCM at `sample_rate` (8000–48000 Hz, as the meter accepts)
    /// with 1 or 2 channels.
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self, FingerprintError> {
        if !fairuse_vad::SAMPLE_RATES.contains(&sample_rate) {
            return Err(FingerprintError::UnsupportedSampleRate(sample_rate));
        }
        if !(1..=2).contains(&channels) {
            return Err(FingerprintError::UnsupportedChannels(channels));
        }
        let mut printer = Fingerprinter::new(&Configuration::preset_test2());
        printer
            .start(sample_rate, u32::from(channels))
            .map_err(|_| FingerprintError::UnsupportedSampleRate(sample_rate))?;
        Ok(Self { printer, channels, half_frame: None, joined: Vec::new(), windows: Vec::new(), taken: 0 })
    }

    /// Feed interleaved samples of any count (a stereo frame split across calls is joined).
    pub fn push(&mut self, pcm: &[i16]) {
        if self.channels == 1 {
            self.printer.consume(pcm);
            return;
        }
        self.joined.clear();
        let mut rest = pcm;
        if let (Some(left), Some((&right, tail))) = (self.half_frame, rest.split_first()) {
            self.joined.extend_from_slice(&[left, right]);
            self.half_frame = None;
            rest = tail;
        }
        let whole = rest.len() / 2 * 2;
        self.joined.extend_from_slice(&rest[..whole]);
        if whole < rest.len() {
            self.half_frame = Some(rest[whole]);
        }
        self.printer.consume(&self.joined);
    }

    /// Record the VAD's verdict on the next 32 ms window of this stream.
    pub fn mark_window(&mut self, is_speech: bool) {
        self.windows.push(is_speech);
    }

    /// Codes computed so far (the last ~2.7 s of audio are not yet summarised).
    pub fn codes(&self) -> &[u32] {
        self.printer.fingerprint()
    }

    /// Hands `on_code(offset_ms, code)` every speech code completed since the last call whose audio
    /// the VAD has judged, in order; `offset_ms` is where the code's audio starts in the stream.
    /// Codes that are not speech are skipped. For live streams: nothing is kept for a later call.
    pub fn take_speech_codes(&mut self, mut on_code: impl FnMut(u64, u32)) {
        let codes = self.printer.fingerprint();
        while self.taken < codes.len() {
            let k = self.taken;
            let span_end = (k as f64 * ITEM_MS + ITEM_SPAN_MS) / WINDOW_MS as f64;
            if (self.windows.len() as f64) < span_end.ceil() {
                break; // the VAD has not reached the end of this code's audio yet
            }
            if item_is_speech(k, &self.windows) {
                on_code((k as f64 * ITEM_MS) as u64, codes[k]);
            }
            self.taken += 1;
        }
    }

    /// Flushes the last codes and pairs every code with its speech flag.
    pub fn finish(mut self) -> Fingerprint {
        self.printer.finish();
        let codes = self.printer.fingerprint().to_vec();
        let speech = speech_flags(codes.len(), &self.windows);
        Fingerprint { codes, speech }
    }
}

/// Whether code `k` spans mostly speech windows (one code, for live streams).
fn item_is_speech(k: usize, windows: &[bool]) -> bool {
    let (start, end) = item_windows(k, windows.len());
    let speech = windows[start..end].iter().filter(|&&w| w).count();
    end > start && speech as f64 >= SPEECH_SHARE_PER_ITEM * (end - start) as f64
}

/// The VAD windows code `k` spans, clipped to the `available` ones.
fn item_windows(k: usize, available: usize) -> (usize, usize) {
    let window_ms = WINDOW_MS as f64;
    let start = ((k as f64 * ITEM_MS) / window_ms).floor() as usize;
    let end = (((k as f64 * ITEM_MS) + ITEM_SPAN_MS) / window_ms).ceil() as usize;
    (start.min(available), end.min(available))
}

/// Whether each of `items` codes spans mostly speech windows.
fn speech_flags(items: usize, windows: &[bool]) -> Vec<bool> {
    // Prefix sums make each item's window count O(1).
    let mut prefix = Vec::with_capacity(windows.len() + 1);
    prefix.push(0u32);
    for &w in windows {
        prefix.push(prefix[prefix.len() - 1] + u32::from(w));
    }
    (0..items)
        .map(|k| {
            let (start, end) = item_windows(k, windows.len());
            if end <= start {
                return false;
            }
            let speech = prefix[end] - prefix[start];
            f64::from(speech) >= SPEECH_SHARE_PER_ITEM * (end - start) as f64
        })
        .collect()
}

/// One code in [`SAMPLE_ONE_IN`] is kept per live session (for the print index): chosen by the code's
/// top 16 bits (the matcher's vote key), so two sessions hearing the same audio keep the same codes
/// and a kept code is one the index can look up.
pub const SAMPLE_ONE_IN: u32 = 4;

/// Whether a session keeps `code` (see [`SAMPLE_ONE_IN`]).
pub fn is_sampled(code: u32) -> bool {
    // Fibonacci hashing: the product's top bits depend on every bit of the key, so similar keys
    // scatter; those top bits pick one key in SAMPLE_ONE_IN.
    let mixed = (code >> 16).wrapping_mul(0x9E37_79B1);
    mixed < u32::MAX / SAMPLE_ONE_IN
}

/// Fingerprints a WAV file (PCM 8/16/24/32-bit or float, 1–2 channels, 8–48 kHz), running the meter's
/// VAD over the same samples for the speech flags.
pub fn fingerprint_wav(path: impl AsRef<Path>) -> Result<Fingerprint, FingerprintError> {
    let mut wav = WavPcm16::open(path)?;
    let mut stream = FingerprintStream::new(wav.sample_rate(), wav.channels())?;
    let mut meter = SpeechMeter::new(wav.sample_rate(), wav.channels())?;
    let mut buf = Vec::with_capacity(8192);
    while wav.read_chunk(&mut buf)? > 0 {
        stream.push(&buf);
        meter.push_with(&buf, |_, is_speech| stream.windows.push(is_speech));
    }
    Ok(stream.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_split_mid_frame_gives_the_same_codes_as_whole_frames() {
        let pcm: Vec<i16> = (0..44_100 * 2 * 8)
            .map(|i| {
                let t = i as f64 / 88_200.0;
                ((t * 2.0 * std::f64::consts::PI * 300.0 * (1.0 + t)).sin() * 8000.0) as i16
            })
            .collect();
        let mut whole = FingerprintStream::new(44_100, 2).unwrap();
        whole.push(&pcm);
        let mut odd = FingerprintStream::new(44_100, 2).unwrap();
        for chunk in pcm.chunks(441 * 2 + 1) {
            odd.push(chunk);
        }
        let (whole, odd) = (whole.finish(), odd.finish());
        assert!(!whole.is_empty());
        assert_eq!(whole.codes(), odd.codes());
    }

    #[test]
    fn live_speech_codes_are_the_speech_codes_of_the_whole_stream() {
        let pcm: Vec<i16> = (0..16_000 * 12)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                ((t * 2.0 * std::f64::consts::PI * (200.0 + 150.0 * (3.0 * t).sin()) * 3.0).sin() * 9000.0) as i16
            })
            .collect();
        // Speech from 2 s to 9 s, as a VAD would say.
        let speech_window = |w: usize| (62..281).contains(&w);
        let mut live = FingerprintStream::new(16_000, 1).unwrap();
        let mut whole = FingerprintStream::new(16_000, 1).unwrap();
        let mut taken = Vec::new();
        let mut windows = 0;
        for chunk in pcm.chunks(320) {
            live.push(chunk);
            whole.push(chunk);
            // One 32 ms window per 512 samples, as the VAD completes them.
            while (windows + 1) * 512 <= taken_samples(&pcm, chunk) {
                live.mark_window(speech_window(windows));
                whole.mark_window(speech_window(windows));
                windows += 1;
            }
            live.take_speech_codes(|offset_ms, code| taken.push((offset_ms, code)));
        }
        let whole = whole.finish();
        let expected: Vec<(u64, u32)> = whole
            .codes()
            .iter()
            .zip(whole.speech())
            .enumerate()
            .filter(|(_, (_, s))| **s)
            .map(|(k, (&c, _))| ((k as f64 * ITEM_MS) as u64, c))
            .collect();
        assert!(!taken.is_empty());
        // Live codes come out as the audio arrives; the last ones wait for the stream's end.
        assert_eq!(taken[..], expected[..taken.len()]);
        assert!(taken.len() + 25 >= expected.len(), "{} of {}", taken.len(), expected.len());
    }

    /// Samples of `pcm` up to and including `chunk` (a sub-slice of it).
    fn taken_samples(pcm: &[i16], chunk: &[i16]) -> usize {
        (chunk.as_ptr() as usize - pcm.as_ptr() as usize) / 2 + chunk.len()
    }

    #[test]
    fn about_one_code_in_four_is_sampled() {
        let kept = (0..65_536u32).filter(|&k| is_sampled(k << 16)).count();
        assert!((16_000..16_800).contains(&kept), "{kept} of 65536");
        // Not a function of a few low key bits: neighbouring keys are not kept in lockstep.
        let runs = (0..65_535u32).filter(|&k| is_sampled(k << 16) && is_sampled((k + 1) << 16)).count();
        assert!(runs < kept / 2, "{runs} adjacent pairs of {kept}");
        assert_eq!(is_sampled(0x1234_0000), is_sampled(0x1234_ffff), "only the top 16 bits decide");
    }

    #[test]
    fn bad_rate_and_channels_are_named() {
        assert!(matches!(FingerprintStream::new(4_000, 1), Err(FingerprintError::UnsupportedSampleRate(4_000))));
        assert!(matches!(FingerprintStream::new(16_000, 3), Err(FingerprintError::UnsupportedChannels(3))));
    }

    #[test]
    fn a_code_is_speech_only_when_most_of_its_span_is() {
        // 10 s of windows: speech from 2 s to 6 s.
        let windows: Vec<bool> = (0..313).map(|w| (62..188).contains(&w)).collect();
        let flags = speech_flags(60, &windows);
        // A code starting at 0 spans 0–2.7 s: mostly silence.
        assert!(!flags[0]);
        // A code starting at 2.5 s (item 20) spans 2.5–5.2 s: all speech.
        assert!(flags[20]);
        // A code starting at 7 s (item 57) spans silence.
        assert!(!flags[57]);
        assert!(speech_flags(5, &[]).iter().all(|&s| !s));
    }

    #[test]
    fn from_parts_rejects_mismatched_lengths() {
        assert!(Fingerprint::from_parts(vec![1, 2], vec![true]).is_none());
        assert_eq!(Fingerprint::from_parts(vec![1], vec![true]).map(|f| f.speech_ms()), Some(123));
    }
}
