//! Speech-ms accuracy of [`SpeechMeter`] (shipped threshold 0.65) on audio synthesised at test time with
//! espeak-ng and sox in a temporary directory. Nothing here is committed audio; both tools must be
//! installed (`apt-get install espeak-ng sox`, or run `bash scripts/test`), and the tests fail, never
//! skip, when either is missing. Run with `--nocapture` to see the per-case tables.
//!
//! # The speech clip
//!
//! Nine espeak-ng utterances ([`UTTERANCES`]: US and British English, two English voice variants,
//! German, Spanish, French and Russian, 120–220 words per minute), each resampled by sox to 16 kHz mono
//! 16-bit and peak-normalised to −6, −12 or −18 dBFS, are joined with known digital-silence gaps
//! ([`LEAD_S`], [`GAPS_S`]: 0.4–3 s) into one ~45 s clip.
//!
//! # Ground truth (speech ms)
//!
//! Measured on each clean utterance's 16 kHz samples, before anything is mixed in:
//!
//! - *Silent* means `|x| < peak · 10^(−40/20)`, i.e. more than 40 dB below that utterance's own peak
//!   sample (so it does not depend on the utterance's level).
//! - The utterance *span* runs from its first to its last non-silent sample: espeak-ng's leading and
//!   trailing silence is trimmed.
//! - Inside the span, every run of consecutive silent samples lasting at least [`MIN_PAUSE_MS`]
//!   (200 ms) is a *pause* and is not speech. espeak-ng pauses 100–340 ms at commas; five runs here
//!   reach 200 ms (1.88 s in all, 1.21 s of it the four pauses of "One, two, three, four, five."). The
//!   meter is specified not to count within-utterance pauses, so the truth does not count them
//!   either. Shorter silent runs (stop closures, word junctions, short comma pauses: 20–150 ms) stay
//!   part of the speech.
//! - Truth = Σ over utterances of (span − pauses), in samples, converted to ms (÷ 16).
//!
//! The tables also print the plain trimmed spans (pauses included) for comparison; that figure is
//! about 7% higher. Moving the −40 dB criterion to −30, −50 or −60 dB moves the truth by −0.5% to
//! +1.3%. Speech RMS, for the SNR cases, is the RMS of exactly the samples counted as truth.
//!
//! # Cases
//!
//! 1. The clean clip at 16 kHz: within ±5% of the truth.
//! 2. The clip plus white and plus pink noise (sox `synth`), scaled to 10 dB below the speech RMS and
//!    added over the whole clip, gaps included: within ±10% of the same truth. (The −18 dBFS
//!    utterances sit at a lower local SNR than the clip's; their per-utterance figures show it.)
//! 3. Music (sox `pluck` strums, a plucked melody, a mix with hi-hat bursts, sustained organ chords),
//!    noise (white, pink, brown, quiet pink, bursts) and tones (sines, sweeps, DTMF digits, dial and
//!    busy tones): exactly 0 ms. `sox -n` synthesises at its default 48 kHz; sox resamples to 16 kHz.
//!    Exception, measured and bounded: Silero v6 counts up to 192 ms at the onset of some sustained
//!    chords from silence; see [`sustained_organ_chords_count_at_most_their_onset`].
//! 4. The clip at 16 kHz mono, 8 kHz mono, 44.1 kHz and 48 kHz stereo (sox `rate`; the right channel
//!    at half amplitude) fed in 16, 20, 100 and 200 ms chunks of the input rate gives exactly the
//!    same total for every chunk size; each rate's total is also held to ±5% of the truth.
//!
//! Per-utterance figures are printed for reading only; the assertions are on the clip totals.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use fairuse_test_audio::{TempDir, run, sox};
use fairuse_vad::{DEFAULT_THRESHOLD, SpeechMeter, WINDOW_SAMPLES};

const RATE: u32 = 16_000;
const SAMPLES_PER_MS: usize = 16;
/// "Silent" is this many dB below the utterance's peak sample.
const SILENCE_DB_BELOW_PEAK: f64 = 40.0;
/// A silent run inside an utterance at least this long is a pause, not speech.
const MIN_PAUSE_MS: usize = 200;
const CLEAN_TOLERANCE_PCT: f64 = 5.0;
const NOISY_TOLERANCE_PCT: f64 = 10.0;
const SNR_DB: f64 = 10.0;
/// Chunk sizes for the streaming cases, in ms of the input rate.
const CHUNK_MS: [u32; 4] = [16, 20, 100, 200];
/// Chunk size used when a case is not about chunking.
const DEFAULT_CHUNK_MS: u32 = 100;

struct Utterance {
    voice: &'static str,
    wpm: u32,
    peak_dbfs: i32,
    text: &'static str,
}

#[rustfmt::skip]
const UTTERANCES: &[Utterance] = &[
    Utterance { voice: "en-us", wpm: 160, peak_dbfs: -6, text: "The meter counts only the windows where someone is really talking." },
    Utterance { voice: "en-gb", wpm: 175, peak_dbfs: -12, text: "Please leave a short message after the tone, and we will call you back." },
    Utterance { voice: "en-us+f3", wpm: 140, peak_dbfs: -6, text: "Music, noise and tones should never count as speech." },
    Utterance { voice: "de", wpm: 150, peak_dbfs: -12, text: "Guten Morgen, wie geht es Ihnen heute?" },
    Utterance { voice: "es", wpm: 190, peak_dbfs: -18, text: "El tiempo de hoy es soleado con algunas nubes por la tarde." },
    Utterance { voice: "en-gb+m3", wpm: 220, peak_dbfs: -6, text: "Fair use limits apply to every account, every day of the week." },
    Utterance { voice: "fr", wpm: 130, peak_dbfs: -12, text: "Bonjour, je voudrais réserver une table pour deux personnes ce soir." },
    Utterance { voice: "en-us", wpm: 120, peak_dbfs: -18, text: "One, two, three, four, five." },
    Utterance { voice: "ru", wpm: 160, peak_dbfs: -6, text: "Это короткое сообщение для проверки." },
];

/// Silence before the first utterance, seconds.
const LEAD_S: f64 = 0.7;
/// Silence after each utterance, seconds (the last one is the clip's tail).
const GAPS_S: [f64; 9] = [0.4, 1.0, 3.0, 0.6, 2.0, 0.8, 1.5, 0.5, 2.5];

// ---------------------------------------------------------------------------------------------
// Tools, temp dirs, WAV I/O
// ---------------------------------------------------------------------------------------------

/// Fails (never skips) when espeak-ng or sox cannot be run.
fn require_tools() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| fairuse_test_audio::require_tools(&[("espeak-ng", "--version"), ("sox", "--version")]));
}

/// Interleaved PCM16 samples plus the WAV's rate and channel count.
struct Pcm {
    samples: Vec<i16>,
    rate: u32,
    channels: u16,
}

fn read_wav(path: &str) -> Pcm {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = reader.spec();
    assert_eq!((spec.sample_format, spec.bits_per_sample), (hound::SampleFormat::Int, 16), "{path}");
    let samples = reader.samples::<i16>().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{path}: {e}"));
    Pcm { samples, rate: spec.sample_rate, channels: spec.channels }
}

fn write_wav_16k_mono(path: &str, samples: &[i16]) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(Path::new(path), spec).unwrap_or_else(|e| panic!("{path}: {e}"));
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

/// 16 kHz mono from `sox -n` + `synth` effects (the arguments after the output file).
fn synth(dir: &TempDir, name: &str, effects: &[&str]) -> String {
    let out = dir.file(&format!("{name}.wav"));
    let mut args = vec!["-n", "-r", "16000", "-b", "16", out.as_str()];
    args.extend_from_slice(effects);
    sox(&args);
    out
}

fn load_16k_mono(path: &str) -> Vec<i16> {
    let pcm = read_wav(path);
    assert_eq!((pcm.rate, pcm.channels), (RATE, 1), "{path} should be 16 kHz mono");
    pcm.samples
}

// ---------------------------------------------------------------------------------------------
// The speech clip and its truth
// ---------------------------------------------------------------------------------------------

/// One utterance placed in the clip; sample indices are absolute clip positions.
struct Placed {
    label: String,
    /// First and one-past-last non-silent sample.
    span: (usize, usize),
    /// Pauses inside the span, `(start, end)`.
    pauses: Vec<(usize, usize)>,
    /// The part of the clip attributed to this utterance in the per-utterance table (gap midpoints).
    region: (usize, usize),
}

impl Placed {
    fn truth_samples(&self) -> usize {
        self.span.1 - self.span.0 - self.pauses.iter().map(|(a, b)| b - a).sum::<usize>()
    }

    fn is_truth(&self, i: usize) -> bool {
        (self.span.0..self.span.1).contains(&i) && !self.pauses.iter().any(|&(a, b)| (a..b).contains(&i))
    }
}

struct SpeechClip {
    samples: Vec<i16>,
    utterances: Vec<Placed>,
    truth_ms: f64,
    span_ms: f64,
    speech_rms: f64,
}

/// Span and pauses of one clean utterance, relative to its own first sample.
fn analyse(pcm: &[i16]) -> ((usize, usize), Vec<(usize, usize)>) {
    let peak = pcm.iter().map(|&x| f64::from(x).abs()).fold(0.0, f64::max);
    assert!(peak > 1000.0, "espeak-ng produced (near) silence: peak {peak}");
    let threshold = peak * 10f64.powf(-SILENCE_DB_BELOW_PEAK / 20.0);
    let loud = |x: &i16| f64::from(*x).abs() >= threshold;
    let start = pcm.iter().position(loud).unwrap();
    let end = pcm.iter().rposition(loud).unwrap() + 1;
    let mut pauses = Vec::new();
    let mut quiet_from = None;
    for (i, x) in pcm.iter().enumerate().take(end).skip(start) {
        if !loud(x) {
            quiet_from.get_or_insert(i);
        } else if let Some(from) = quiet_from.take()
            && i - from >= MIN_PAUSE_MS * SAMPLES_PER_MS
        {
            pauses.push((from, i));
        }
    }
    ((start, end), pauses)
}

fn synth_utterance(dir: &TempDir, i: usize, u: &Utterance) -> Vec<i16> {
    let raw = dir.file(&format!("espeak{i}.wav"));
    let out = dir.file(&format!("utterance{i}.wav"));
    run("espeak-ng", &["-v", u.voice, "-s", &u.wpm.to_string(), "-w", &raw, u.text]);
    sox(&[&raw, "-b", "16", "-c", "1", &out, "rate", "16000", "gain", "-n", &u.peak_dbfs.to_string()]);
    load_16k_mono(&out)
}

fn silence(seconds: f64) -> usize {
    (seconds * f64::from(RATE)).round() as usize
}

fn build_speech_clip() -> SpeechClip {
    require_tools();
    let dir = TempDir::new("speech");
    let mut samples: Vec<i16> = vec![0; silence(LEAD_S)];
    let mut utterances = Vec::new();
    for (i, (u, gap)) in UTTERANCES.iter().zip(GAPS_S).enumerate() {
        let pcm = synth_utterance(&dir, i, u);
        let ((start, end), pauses) = analyse(&pcm);
        let offset = samples.len();
        samples.extend_from_slice(&pcm);
        samples.resize(samples.len() + silence(gap), 0);
        utterances.push(Placed {
            label: format!("{} {} wpm {} dBFS", u.voice, u.wpm, u.peak_dbfs),
            span: (offset + start, offset + end),
            pauses: pauses.iter().map(|&(a, b)| (offset + a, offset + b)).collect(),
            region: (0, 0),
        });
    }
    // Each utterance owns the clip from the middle of the gap before it to the middle of the gap after.
    let n = utterances.len();
    for k in 0..n {
        let from = if k == 0 { 0 } else { (utterances[k - 1].span.1 + utterances[k].span.0) / 2 };
        let to = if k + 1 == n { samples.len() } else { (utterances[k].span.1 + utterances[k + 1].span.0) / 2 };
        utterances[k].region = (from, to);
    }
    let truth: usize = utterances.iter().map(Placed::truth_samples).sum();
    let span: usize = utterances.iter().map(|u| u.span.1 - u.span.0).sum();
    let energy: f64 = utterances
        .iter()
        .flat_map(|u| (u.span.0..u.span.1).filter(|&i| u.is_truth(i)))
        .map(|i| f64::from(samples[i]).powi(2))
        .sum();
    SpeechClip {
        speech_rms: (energy / truth as f64).sqrt(),
        truth_ms: truth as f64 / SAMPLES_PER_MS as f64,
        span_ms: span as f64 / SAMPLES_PER_MS as f64,
        samples,
        utterances,
    }
}

fn speech_clip() -> &'static SpeechClip {
    static CLIP: OnceLock<SpeechClip> = OnceLock::new();
    CLIP.get_or_init(build_speech_clip)
}

// ---------------------------------------------------------------------------------------------
// Metering and reporting
// ---------------------------------------------------------------------------------------------

struct Metered {
    speech_ms: u64,
    /// Sum of what every `push` returned.
    pushed_ms: u64,
    probabilities: Vec<f32>,
}

impl Metered {
    fn max_probability(&self) -> f32 {
        self.probabilities.iter().copied().fold(0.0, f32::max)
    }
}

/// Feeds interleaved `pcm` in chunks of `chunk_ms` of the input rate (chunk `k` ends at frame
/// `round(k · rate · chunk_ms / 1000)`, so 16 ms at 44.1 kHz alternates 705 and 706 frames).
fn meter(pcm: &[i16], rate: u32, channels: u16, chunk_ms: u32) -> Metered {
    let mut meter = SpeechMeter::new(rate, channels).expect("supported format");
    assert_eq!(meter.threshold(), DEFAULT_THRESHOLD);
    let channels = usize::from(channels);
    let frames = pcm.len() / channels;
    let mut probabilities = Vec::with_capacity(frames * 16_000 / rate as usize / WINDOW_SAMPLES + 1);
    let mut pushed_ms = 0;
    let mut start = 0;
    for k in 1.. {
        let end = ((k * u64::from(rate) * u64::from(chunk_ms) + 500) / 1000).min(frames as u64) as usize;
        pushed_ms += meter.push_with(&pcm[start * channels..end * channels], |p, _| probabilities.push(p));
        start = end;
        if end == frames {
            break;
        }
    }
    Metered { speech_ms: meter.speech_ms(), pushed_ms, probabilities }
}

fn error_pct(truth: f64, measured: f64) -> f64 {
    (measured - truth) / truth * 100.0
}

/// A plain-text table printed in one piece (tests run in parallel).
struct Table {
    title: String,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    fn new(title: impl Into<String>, header: &[&'static str]) -> Self {
        Self { title: title.into(), header: header.to_vec(), rows: Vec::new(), notes: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, &w))| {
                    let pad = " ".repeat(w - c.chars().count());
                    if i == 0 { format!("{c}{pad}") } else { format!("{pad}{c}") }
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let mut out = format!("\n{}\n", self.title);
        writeln!(out, "{}", line(self.header.clone())).unwrap();
        writeln!(out, "|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")).unwrap();
        for row in &self.rows {
            writeln!(out, "{}", line(row.iter().map(String::as_str).collect())).unwrap();
        }
        for note in &self.notes {
            writeln!(out, "  {note}").unwrap();
        }
        print!("{out}");
    }
}

/// Per-utterance figures (report only): speech windows are attributed to the utterance whose
/// region holds the window's centre.
fn per_utterance_table(case: &str, clip: &SpeechClip, metered: &Metered) -> Table {
    let mut table = Table::new(
        format!("{case}: per utterance (report only; windows attributed by centre)"),
        &["utterance", "span ms", "pauses ms", "truth ms", "measured ms", "error %"],
    );
    for u in &clip.utterances {
        let counted = metered
            .probabilities
            .iter()
            .enumerate()
            .filter(|&(w, &p)| p > DEFAULT_THRESHOLD && (u.region.0..u.region.1).contains(&(w * WINDOW_SAMPLES + 256)))
            .count() as u64
            * 32;
        let truth = u.truth_samples() as f64 / 16.0;
        let pauses: usize = u.pauses.iter().map(|(a, b)| b - a).sum();
        table.row(vec![
            u.label.clone(),
            format!("{:.0}", (u.span.1 - u.span.0) as f64 / 16.0),
            format!("{:.0}", pauses as f64 / 16.0),
            format!("{truth:.0}"),
            counted.to_string(),
            format!("{:+.1}", error_pct(truth, counted as f64)),
        ]);
    }
    table
}

/// The windows counted where the truth has no speech at all (gaps and pauses), in ms.
fn counted_outside_truth_ms(clip: &SpeechClip, metered: &Metered) -> u64 {
    let speech_at = |i: usize| clip.utterances.iter().any(|u| u.is_truth(i));
    metered
        .probabilities
        .iter()
        .enumerate()
        .filter(|&(w, &p)| p > DEFAULT_THRESHOLD && !(w * WINDOW_SAMPLES..(w + 1) * WINDOW_SAMPLES).any(speech_at))
        .count() as u64
        * 32
}

// ---------------------------------------------------------------------------------------------
// 1 + 2: speech, clean and with noise
// ---------------------------------------------------------------------------------------------

/// Adds `noise` (same length or longer) scaled to `SNR_DB` below the clip's speech RMS.
fn mix_at_snr(clip: &SpeechClip, noise: &[i16]) -> (Vec<i16>, f64, usize) {
    assert!(noise.len() >= clip.samples.len(), "noise too short");
    let noise = &noise[..clip.samples.len()];
    let noise_rms = (noise.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    let target_rms = clip.speech_rms / 10f64.powf(SNR_DB / 20.0);
    let gain = target_rms / noise_rms;
    let mut clipped = 0;
    let mixed = clip
        .samples
        .iter()
        .zip(noise)
        .map(|(&s, &n)| {
            let v = (f64::from(s) + gain * f64::from(n)).round();
            if !(-32768.0..=32767.0).contains(&v) {
                clipped += 1;
            }
            v.clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    (mixed, target_rms, clipped)
}

fn speech_case(case: &str, samples: &[i16], tolerance_pct: f64, extra_note: Option<String>) {
    let clip = speech_clip();
    let metered = meter(samples, RATE, 1, DEFAULT_CHUNK_MS);
    let measured = metered.speech_ms as f64;
    let err = error_pct(clip.truth_ms, measured);
    let mut table = Table::new(
        format!("VAD accuracy: {case}"),
        &["case", "truth ms", "measured ms", "error %", "tolerance", "outside truth ms", "result"],
    );
    let ok = err.abs() <= tolerance_pct;
    table.row(vec![
        case.to_owned(),
        format!("{:.0}", clip.truth_ms),
        metered.speech_ms.to_string(),
        format!("{err:+.2}"),
        format!("±{tolerance_pct}%"),
        counted_outside_truth_ms(clip, &metered).to_string(),
        if ok { "ok" } else { "FAIL" }.to_owned(),
    ]);
    table.notes.push(format!(
        "truth = trimmed utterance spans minus pauses ≥ {MIN_PAUSE_MS} ms; spans with pauses would be {:.0} ms \
         (measured {:+.2}% of that); clip {:.1} s, {} windows",
        clip.span_ms,
        error_pct(clip.span_ms, measured),
        samples.len() as f64 / f64::from(RATE),
        metered.probabilities.len()
    ));
    table
        .notes
        .push("outside truth ms = counted windows that hold no truth sample (spill into gaps and pauses)".to_owned());
    table.notes.extend(extra_note);
    table.print();
    per_utterance_table(case, clip, &metered).print();
    assert!(
        ok,
        "case {case}: truth {:.0} ms, measured {measured} ms, error {err:+.2}% is outside the tolerance ±{tolerance_pct}%",
        clip.truth_ms
    );
    assert_eq!(metered.pushed_ms, metered.speech_ms, "case {case}: the per-push deltas must add up to the total");
}

#[test]
fn clean_speech_is_within_5_percent_of_the_truth() {
    let clip = speech_clip();
    assert!(clip.truth_ms > 20_000.0, "the clip should hold over 20 s of speech: {:.0} ms", clip.truth_ms);
    speech_case("clean speech, 16 kHz mono", &clip.samples, CLEAN_TOLERANCE_PCT, None);
}

/// `kind` is the sox `synth` noise type, `label` its name in the report.
fn noisy_speech(kind: &str, label: &str) {
    let clip = speech_clip();
    let dir = TempDir::new(kind);
    // `sox -n` synthesises at its default 48 kHz and resamples to 16 kHz, so the length is in seconds.
    let length = format!("{:.3}", clip.samples.len() as f64 / f64::from(RATE) + 0.1);
    let noise = load_16k_mono(&synth(&dir, kind, &["synth", &length, kind, "gain", "-n", "-6"]));
    let (mixed, noise_rms, clipped) = mix_at_snr(clip, &noise);
    let note = format!(
        "speech RMS {:.1} dBFS, {label} RMS {:.1} dBFS (SNR {SNR_DB} dB), {clipped} samples clipped",
        20.0 * (clip.speech_rms / 32768.0).log10(),
        20.0 * (noise_rms / 32768.0).log10()
    );
    speech_case(&format!("speech + {label} at {SNR_DB} dB SNR"), &mixed, NOISY_TOLERANCE_PCT, Some(note));
}

#[test]
fn speech_in_white_noise_at_10_db_snr_is_within_10_percent() {
    noisy_speech("whitenoise", "white noise");
}

#[test]
fn speech_in_pink_noise_at_10_db_snr_is_within_10_percent() {
    noisy_speech("pinknoise", "pink noise");
}

// ---------------------------------------------------------------------------------------------
// 3: music, noise and tones count zero
// ---------------------------------------------------------------------------------------------

/// Concatenates 16 kHz mono files with sox.
fn concat(dir: &TempDir, name: &str, parts: &[String]) -> String {
    let out = dir.file(&format!("{name}.wav"));
    let mut args: Vec<&str> = parts.iter().map(String::as_str).collect();
    args.push(&out);
    sox(&args);
    out
}

/// A plucked chord, strummed (each string 50 ms after the previous one), `seconds` long.
fn strum(dir: &TempDir, name: &str, notes: &[&str], seconds: f64) -> String {
    let mut effects = vec!["synth".to_owned(), seconds.to_string()];
    for n in notes {
        effects.extend(["pluck".to_owned(), (*n).to_owned()]);
    }
    effects.push("delay".to_owned());
    effects.extend((0..notes.len()).map(|i| format!("{:.2}", i as f64 * 0.05)));
    effects.extend(["remix", "-", "fade", "0", &seconds.to_string(), "0.1", "gain", "-n", "-6"].map(str::to_owned));
    let effects: Vec<&str> = effects.iter().map(String::as_str).collect();
    synth(dir, name, &effects)
}

/// A plucked melody: note `i` starts at `i · step` seconds and rings on (the pluck decays).
fn pluck_melody(dir: &TempDir, name: &str, notes: &[&str], step: f64, peak_db: &str) -> String {
    let seconds = (notes.len() as f64 + 1.0) * step;
    let mut effects = vec!["synth".to_owned(), format!("{seconds:.3}")];
    for n in notes {
        effects.extend(["pluck".to_owned(), (*n).to_owned()]);
    }
    effects.push("delay".to_owned());
    effects.extend((0..notes.len()).map(|i| format!("{:.3}", i as f64 * step)));
    effects.extend(["remix", "-", "gain", "-n", peak_db].map(str::to_owned));
    let effects: Vec<&str> = effects.iter().map(String::as_str).collect();
    synth(dir, name, &effects)
}

/// Two sines summed, `on` seconds, then `off` seconds of silence.
fn two_tone(dir: &TempDir, name: &str, low: u32, high: u32, on: f64, off: f64) -> String {
    synth(
        dir,
        name,
        &[
            "synth",
            &on.to_string(),
            "sine",
            &low.to_string(),
            "sine",
            &high.to_string(),
            "remix",
            "-",
            "fade",
            "0.005",
            &on.to_string(),
            "0.005",
            "gain",
            "-n",
            "-6",
            "pad",
            "0",
            &off.to_string(),
        ],
    )
}

type NonSpeechCase = (&'static str, fn(&TempDir) -> String);

fn music_cases() -> Vec<NonSpeechCase> {
    fn guitar(dir: &TempDir) -> String {
        let chords: [&[&str]; 4] = [
            &["G2", "B2", "D3", "G3", "D4", "G4"],
            &["C3", "E3", "G3", "C4", "E4"],
            &["D3", "A3", "D4", "F#4"],
            &["E2", "B2", "E3", "G3", "B3", "E4"],
        ];
        let parts: Vec<String> =
            chords.iter().enumerate().map(|(i, c)| strum(dir, &format!("chord{i}"), c, 2.0)).collect();
        concat(dir, "guitar", &parts)
    }
    fn melody(dir: &TempDir) -> String {
        let notes = ["C4", "C4", "G4", "G4", "A4", "A4", "G4", "F4", "F4", "E4", "E4", "D4", "D4", "C4"];
        pluck_melody(dir, "melody", &notes, 0.4, "-6")
    }
    fn band(dir: &TempDir) -> String {
        // Strummed chords + a plucked melody + a hi-hat (noise bursts every 250 ms), mixed.
        let chords = guitar(dir);
        let notes = ["E4", "G4", "A4", "B4", "D5", "B4", "A4", "G4", "E4", "D4", "E4", "G4", "A4", "G4", "E4", "D4"];
        let lead = pluck_melody(dir, "lead", &notes, 0.45, "-9");
        let hat = synth(
            dir,
            "hat",
            &["synth", "0.04", "whitenoise", "highpass", "5000", "fade", "0", "0.04", "0.035", "gain", "-n", "-14"],
        );
        let hats = dir.file("hats.wav");
        sox(&[&hat, &hats, "pad", "0", "0.21", "repeat", "31"]);
        let out = dir.file("band.wav");
        sox(&["-m", &chords, &lead, &hats, &out, "trim", "0", "7.5", "gain", "-n", "-3"]);
        out
    }
    vec![
        ("music: strummed guitar chords G C D Em (8 s)", guitar),
        ("music: plucked melody (6 s)", melody),
        ("music: chords + melody + hi-hat mix (7.5 s)", band),
    ]
}

/// Sustained (organ-like) chords, kept apart from [`music_cases`] because Silero v6 itself counts the
/// onset of the first chord as speech: see [`sustained_organ_chords_count_at_most_their_onset`].
fn organ_cases() -> Vec<NonSpeechCase> {
    fn organ(dir: &TempDir) -> String {
        let chords: [[&str; 4]; 3] = [["C3", "E4", "G4", "C5"], ["A2", "E4", "A4", "C5"], ["F2", "F4", "A4", "C5"]];
        let parts: Vec<String> = chords
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut effects = vec!["synth", "2"];
                for n in c {
                    effects.extend(["triangle", n]);
                }
                effects.extend(["remix", "-", "tremolo", "5", "40", "fade", "0.05", "2", "0.2", "gain", "-n", "-8"]);
                synth(dir, &format!("organ{i}"), &effects)
            })
            .collect();
        concat(dir, "organ", &parts)
    }
    vec![("music: organ chords C Am F, triangle waves with tremolo (6 s)", organ)]
}

fn noise_cases() -> Vec<NonSpeechCase> {
    vec![
        ("noise: white, -6 dBFS peak (5 s)", |d| synth(d, "white", &["synth", "5", "whitenoise", "gain", "-n", "-6"])),
        ("noise: pink, -6 dBFS peak (5 s)", |d| synth(d, "pink", &["synth", "5", "pinknoise", "gain", "-n", "-6"])),
        ("noise: brown, -6 dBFS peak (5 s)", |d| synth(d, "brown", &["synth", "5", "brownnoise", "gain", "-n", "-6"])),
        ("noise: pink, -40 dBFS peak (5 s)", |d| synth(d, "pinkq", &["synth", "5", "pinknoise", "gain", "-n", "-40"])),
        ("noise: white bursts 300 ms on/off (6 s)", |d| {
            synth(d, "bursts", &["synth", "0.3", "whitenoise", "gain", "-n", "-10", "pad", "0", "0.3", "repeat", "9"])
        }),
    ]
}

fn tone_cases() -> Vec<NonSpeechCase> {
    fn sine(dir: &TempDir, hz: &str) -> String {
        synth(dir, &format!("sine{hz}"), &["synth", "2", "sine", hz, "gain", "-n", "-6"])
    }
    fn dtmf(dir: &TempDir) -> String {
        const LOW: [u32; 4] = [697, 770, 852, 941];
        const HIGH: [u32; 3] = [1209, 1336, 1477];
        // 5 5 5 0 1 2 3 4 5 6 7 8 9 * #, 100 ms tone + 100 ms gap each.
        #[rustfmt::skip]
        let keys = [(1, 1), (1, 1), (1, 1), (3, 1), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 2)];
        let parts: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, &(r, c))| two_tone(dir, &format!("dtmf{i}"), LOW[r], HIGH[c], 0.1, 0.1))
            .collect();
        concat(dir, "dtmf", &parts)
    }
    vec![
        ("tone: sine 100 Hz (2 s)", |d| sine(d, "100")),
        ("tone: sine 440 Hz (2 s)", |d| sine(d, "440")),
        ("tone: sine 1 kHz (2 s)", |d| sine(d, "1000")),
        ("tone: sine 3 kHz (2 s)", |d| sine(d, "3000")),
        ("tone: sine 6 kHz (2 s)", |d| sine(d, "6000")),
        ("tone: linear sweep 100-4000 Hz (5 s)", |d| {
            synth(d, "sweep_lin", &["synth", "5", "sine", "100-4000", "gain", "-n", "-6"])
        }),
        ("tone: exponential sweep 50-7000 Hz (5 s)", |d| {
            synth(d, "sweep_exp", &["synth", "5", "sine", "50:7000", "gain", "-n", "-6"])
        }),
        ("tone: square sweep 200-2000 Hz (4 s)", |d| {
            synth(d, "sweep_sq", &["synth", "4", "square", "200:2000", "gain", "-n", "-12"])
        }),
        ("tone: DTMF digits 555-0123456789*# (3 s)", dtmf),
        ("tone: dial tone 350+440 Hz (3 s)", |d| two_tone(d, "dial", 350, 440, 3.0, 0.0)),
        ("tone: busy signal 480+620 Hz, 0.5 s on/off (4 s)", |d| {
            let one = two_tone(d, "busy1", 480, 620, 0.5, 0.5);
            let out = d.file("busy.wav");
            sox(&[&one, &out, "repeat", "3"]);
            out
        }),
    ]
}

fn non_speech(group: &str, cases: Vec<NonSpeechCase>) {
    require_tools();
    let dir = TempDir::new(group);
    let mut table =
        Table::new(format!("VAD on {group}: must count 0 ms"), &["case", "truth ms", "measured ms", "max p", "result"]);
    let mut failures = Vec::new();
    for (case, generate) in cases {
        let samples = load_16k_mono(&generate(&dir));
        assert!(samples.len() >= RATE as usize, "case {case}: generated only {} samples", samples.len());
        let metered = meter(&samples, RATE, 1, DEFAULT_CHUNK_MS);
        let ok = metered.speech_ms == 0;
        table.row(vec![
            case.to_owned(),
            "0".to_owned(),
            metered.speech_ms.to_string(),
            format!("{:.3}", metered.max_probability()),
            if ok { "ok" } else { "FAIL" }.to_owned(),
        ]);
        if !ok {
            let windows: Vec<String> = metered
                .probabilities
                .iter()
                .enumerate()
                .filter(|&(_, &p)| p > DEFAULT_THRESHOLD)
                .map(|(w, p)| format!("{:.2}s p={p:.2}", (w * WINDOW_SAMPLES) as f64 / f64::from(RATE)))
                .collect();
            failures.push(format!(
                "case {case}: truth 0 ms, measured {} ms, tolerance 0 ms (windows above {DEFAULT_THRESHOLD}: {})",
                metered.speech_ms,
                windows.join(", ")
            ));
        }
    }
    table.print();
    assert!(failures.is_empty(), "non-speech counted as speech:\n{}", failures.join("\n"));
}

#[test]
fn music_counts_zero() {
    non_speech("music", music_cases());
}

/// Sustained chords: the one measured deviation from "music counts 0 ms", kept visible and bounded.
/// Silero v6 gives p 0.73–0.91 to the first 192 ms (6 windows) of a C3 E4 G4 C5 triangle-wave chord
/// starting from silence (onnxruntime 1.32 on `silero_vad_openvino_16k.onnx` gives the same
/// probabilities, so this is the model, not the port); once the chord sustains, and at the later
/// chord changes, p falls below 0.2. It is an onset effect of some voicings: of 36 four-note major
/// chords (12 roots × sine, triangle, sawtooth) starting from silence, 5 counted 32–192 ms.
///
/// Decision: the meter keeps counting every window above the threshold (SPEC section 5, and the
/// same decisions as Omi's model path); an onset filter would hide this case but also drop short
/// real words. So this test holds the deviation to what was measured: windows counted only in the
/// first 256 ms after the sound starts from silence, at most 8 of them, and none once it sustains.
#[test]
fn sustained_organ_chords_count_at_most_their_onset() {
    require_tools();
    let dir = TempDir::new("organ chords");
    for (case, generate) in organ_cases() {
        let samples = load_16k_mono(&generate(&dir));
        let metered = meter(&samples, RATE, 1, DEFAULT_CHUNK_MS);
        let counted: Vec<f64> = metered
            .probabilities
            .iter()
            .enumerate()
            .filter(|&(_, &p)| p > DEFAULT_THRESHOLD)
            .map(|(w, _)| (w * WINDOW_SAMPLES) as f64 / f64::from(RATE))
            .collect();
        println!("{case}: {} ms counted, at {counted:?} s, max p {:.3}", metered.speech_ms, metered.max_probability());
        assert!(
            counted.iter().all(|&t| t < 0.256),
            "case {case}: windows counted after the onset (at {counted:?} s); only the first 256 ms may count"
        );
        assert!(metered.speech_ms <= 256, "case {case}: measured {} ms, at most 256 ms allowed", metered.speech_ms);
    }
}

#[test]
fn noise_counts_zero() {
    non_speech("noise", noise_cases());
}

#[test]
fn tones_count_zero() {
    non_speech("tones", tone_cases());
}

// ---------------------------------------------------------------------------------------------
// 4: chunk-size independence
// ---------------------------------------------------------------------------------------------

/// The speech clip converted by sox with `effects` (e.g. `rate 8000`).
fn converted_clip(tag: &str, effects: &[&str]) -> Pcm {
    let clip = speech_clip();
    let dir = TempDir::new(tag);
    let input = dir.file("clip16k.wav");
    write_wav_16k_mono(&input, &clip.samples);
    let out = dir.file(&format!("{tag}.wav"));
    let mut args = vec![input.as_str(), "-b", "16", out.as_str()];
    args.extend_from_slice(effects);
    sox(&args);
    read_wav(&out)
}

fn chunking_case(format: &str, pcm: &Pcm) {
    let clip = speech_clip();
    let mut table = Table::new(
        format!("VAD chunk-size independence: {format}"),
        &["chunk ms", "truth ms", "measured ms", "error %", "windows", "max |Δp| vs 200 ms", "result"],
    );
    let runs: Vec<(u32, Metered)> =
        CHUNK_MS.iter().map(|&ms| (ms, meter(&pcm.samples, pcm.rate, pcm.channels, ms))).collect();
    let (_, reference) = runs.last().unwrap();
    let mut failures = Vec::new();
    for (ms, m) in &runs {
        let same = m.speech_ms == reference.speech_ms && m.pushed_ms == m.speech_ms;
        let max_dp =
            m.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        table.row(vec![
            ms.to_string(),
            format!("{:.0}", clip.truth_ms),
            m.speech_ms.to_string(),
            format!("{:+.2}", error_pct(clip.truth_ms, m.speech_ms as f64)),
            m.probabilities.len().to_string(),
            format!("{max_dp:.1e}"),
            if same { "same" } else { "DIFFERENT" }.to_owned(),
        ]);
        if !same {
            failures.push(format!(
                "case {format}, {ms} ms chunks: measured {} ms (pushes summed to {} ms) but {} ms with {} ms chunks; \
                 tolerance 0 ms (chunking must not change the total)",
                m.speech_ms, m.pushed_ms, reference.speech_ms, CHUNK_MS[3]
            ));
        }
        if m.probabilities.len() != reference.probabilities.len() {
            failures.push(format!(
                "case {format}, {ms} ms chunks: {} windows vs {} with {} ms chunks",
                m.probabilities.len(),
                reference.probabilities.len(),
                CHUNK_MS[3]
            ));
        }
    }
    table.notes.push(format!(
        "{} Hz, {} channel(s), {:.1} s; truth from the 16 kHz clean utterances",
        pcm.rate,
        pcm.channels,
        pcm.samples.len() as f64 / f64::from(pcm.channels) / f64::from(pcm.rate)
    ));
    table.print();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let measured = reference.speech_ms as f64;
    let err = error_pct(clip.truth_ms, measured);
    assert!(
        err.abs() <= CLEAN_TOLERANCE_PCT,
        "case {format}: truth {:.0} ms, measured {measured} ms, error {err:+.2}% is outside the tolerance \
         ±{CLEAN_TOLERANCE_PCT}%",
        clip.truth_ms
    );
}

#[test]
fn chunk_size_does_not_change_the_total_at_16_khz_mono() {
    let clip = speech_clip();
    chunking_case("16 kHz mono", &Pcm { samples: clip.samples.clone(), rate: RATE, channels: 1 });
}

#[test]
fn chunk_size_does_not_change_the_total_at_8_khz_mono() {
    let pcm = converted_clip("8k", &["rate", "8000"]);
    assert_eq!((pcm.rate, pcm.channels), (8_000, 1));
    chunking_case("8 kHz mono (sox rate)", &pcm);
}

#[test]
fn chunk_size_does_not_change_the_total_at_44_1_khz_stereo() {
    let pcm = converted_clip("44k1", &["remix", "1", "1v0.5", "rate", "44100"]);
    assert_eq!((pcm.rate, pcm.channels), (44_100, 2));
    chunking_case("44.1 kHz stereo (sox rate; right = left / 2)", &pcm);
}

#[test]
fn chunk_size_does_not_change_the_total_at_48_khz_stereo() {
    let pcm = converted_clip("48k", &["remix", "1", "1v0.5", "rate", "48000"]);
    assert_eq!((pcm.rate, pcm.channels), (48_000, 2));
    chunking_case("48 kHz stereo (sox rate; right = left / 2)", &pcm);
}
