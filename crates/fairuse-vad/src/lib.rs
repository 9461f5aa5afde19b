//! PCM → speech milliseconds, the way the fair-use meter counts them.
//!
//! Silero VAD v6 (the model Omi meters with; MIT weights from PyPI `silero-vad` 6.2.3, compiled in)
//! runs as a hand-written forward pass on consecutive 512-sample (32 ms) windows at 16 kHz, with 64
//! samples of context and LSTM state kept per stream. A window whose probability is above the
//! threshold (default 0.65) counts 32 ms. Counting is per window, never per network chunk, so the
//! total does not depend on how a client chunks its audio (Omi's per-chunk count does). Pre-roll and
//! hangover are never counted. Audio at 8–48 kHz is resampled to 16 kHz; stereo is averaged.
//!
//! This crate depends on no other fairuse crate, no async runtime and no ML framework, and never
//! touches the network: the gateway feeds it samples, the CLI feeds it files ([`meter_wav`]).

// `deny`, not `forbid`: the forward pass calls its AVX2+FMA copy in one `unsafe` block (in
// `model.rs`, allowed there, after run-time feature detection). Measured: the shipped x86-64
// binary runs the model about 1.4x faster on CPUs that have them (`bench/vad.sh`).
#![deny(unsafe_code)]

mod model;
mod resample;

use std::path::Path;

pub use model::{CONTEXT_SAMPLES, Kernels, MODEL_SAMPLE_RATE, SileroModel, VadState, WINDOW_SAMPLES};
use resample::Resampler;

/// Milliseconds of audio in one model window.
pub const WINDOW_MS: u64 = 32;
/// Omi's gate threshold, the default here.
pub const DEFAULT_THRESHOLD: f32 = 0.65;
/// Accepted input sample rates (Hz), inclusive.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("the embedded VAD weights are unusable: {0}")]
    BadWeights(String),
    #[error("sample rate {0} Hz is not supported (8000-48000)")]
    UnsupportedSampleRate(u32),
    #[error("{0} channels are not supported (1 or 2)")]
    UnsupportedChannels(u16),
    #[error("threshold {0} is not in [0, 1]")]
    InvalidThreshold(f32),
    #[error("kernels: this CPU cannot run the {} VAD kernels", .0.name())]
    UnsupportedKernels(Kernels),
    #[error("unsupported WAV encoding: {0}")]
    UnsupportedWav(String),
    #[error("cannot read WAV")]
    Wav(#[from] hound::Error),
}

/// Speech metering state for one audio stream. Cheap to create (the weights are shared); about
/// 3 KB per stream plus the resampler's phase table when the input is not 16 kHz.
#[derive(Debug)]
pub struct SpeechMeter {
    model: &'static SileroModel,
    kernels: Kernels,
    state: VadState,
    resampler: Option<Resampler>,
    sample_rate: u32,
    channels: u16,
    threshold: f32,
    /// A left sample whose right sample is in the next chunk (stereo only).
    half_frame: Option<i16>,
    /// Mono input-rate samples of the current call (scratch, kept to avoid reallocating).
    mono: Vec<f32>,
    /// 16 kHz samples not yet forming a whole window.
    pending: Vec<f32>,
    input_frames: u64,
    windows: u64,
    speech_windows: u64,
}

impl SpeechMeter {
    /// A meter for interleaved 16-bit PCM at `sample_rate` (8000–48000 Hz) with 1 or 2 channels.
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self, VadError> {
        if !SAMPLE_RATES.contains(&sample_rate) {
            return Err(VadError::UnsupportedSampleRate(sample_rate));
        }
        if !(1..=2).contains(&channels) {
            return Err(VadError::UnsupportedChannels(channels));
        }
        Ok(Self {
            model: SileroModel::embedded()?,
            kernels: Kernels::detected(),
            state: VadState::new(),
            resampler: Resampler::new(sample_rate),
            sample_rate,
            channels,
            threshold: DEFAULT_THRESHOLD,
            half_frame: None,
            mono: Vec::new(),
            pending: Vec::with_capacity(2 * WINDOW_SAMPLES),
            input_frames: 0,
            windows: 0,
            speech_windows: 0,
        })
    }

    /// Use `threshold` instead of 0.65; a window counts when its probability is strictly above it.
    pub fn with_threshold(mut self, threshold: f32) -> Result<Self, VadError> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(VadError::InvalidThreshold(threshold));
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// Run the model with `kernels` instead of the fastest this CPU supports (tests and benchmarks
    /// compare the two); an error if this CPU cannot run them.
    pub fn with_kernels(mut self, kernels: Kernels) -> Result<Self, VadError> {
        if !kernels.is_supported() {
            return Err(VadError::UnsupportedKernels(kernels));
        }
        self.kernels = kernels;
        Ok(self)
    }

    /// Feed interleaved samples of any count (a stereo frame split across calls is joined). Returns
    /// the speech milliseconds this call added.
    pub fn push(&mut self, pcm: &[i16]) -> u64 {
        self.push_with(pcm, |_, _| {})
    }

    /// Like [`push`](Self::push), also calling `on_window(probability, is_speech)` for every window
    /// completed, in order; the gateway derives longest-speech and pause statistics from it.
    pub fn push_with(&mut self, pcm: &[i16], mut on_window: impl FnMut(f32, bool)) -> u64 {
        const SCALE: f32 = 1.0 / 32768.0;
        self.mono.clear();
        if self.channels == 1 {
            self.mono.extend(pcm.iter().map(|&s| f32::from(s) * SCALE));
            self.input_frames += pcm.len() as u64;
        } else {
            let mut rest = pcm;
            if let (Some(left), Some((&right, tail))) = (self.half_frame, rest.split_first()) {
                self.mono.push((f32::from(left) + f32::from(right)) * 0.5 * SCALE);
                self.half_frame = None;
                rest = tail;
            }
            let mut frames = rest.chunks_exact(2);
            self.mono.extend(frames.by_ref().map(|f| (f32::from(f[0]) + f32::from(f[1])) * 0.5 * SCALE));
            if let [left] = frames.remainder() {
                self.half_frame = Some(*left);
            }
            self.input_frames += self.mono.len() as u64;
        }

        match &mut self.resampler {
            Some(resampler) => resampler.process(&self.mono, &mut self.pending),
            None => self.pending.extend_from_slice(&self.mono),
        }

        let before = self.speech_windows;
        let mut window = [0.0f32; WINDOW_SAMPLES];
        let whole = self.pending.len() / WINDOW_SAMPLES * WINDOW_SAMPLES;
        for chunk in self.pending[..whole].chunks_exact(WINDOW_SAMPLES) {
            window.copy_from_slice(chunk);
            let probability = self.model.predict_with(self.kernels, &mut self.state, &window);
            let is_speech = probability > self.threshold;
            self.windows += 1;
            self.speech_windows += u64::from(is_speech);
            on_window(probability, is_speech);
        }
        self.pending.drain(..whole);
        (self.speech_windows - before) * WINDOW_MS
    }

    /// Speech counted so far: 32 ms per window above the threshold.
    pub fn speech_ms(&self) -> u64 {
        self.speech_windows * WINDOW_MS
    }

    /// Windows run so far (each 32 ms of 16 kHz audio).
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// Duration of the audio fed so far, from the input frame count.
    pub fn input_ms(&self) -> u64 {
        self.input_frames * 1000 / u64::from(self.sample_rate)
    }

    /// The kernels this meter runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }
}

/// The speech in one audio file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReport {
    pub speech_ms: u64,
    pub duration_ms: u64,
    /// `speech_ms / duration_ms`, 0 for an empty file.
    pub speech_share: f64,
}

/// Meter a WAV file (PCM 8/16/24/32-bit or float, 1–2 channels, 8–48 kHz) with the same code as the
/// live gateway and the default threshold.
pub fn meter_wav(path: impl AsRef<Path>) -> Result<MeterReport, VadError> {
    let mut wav = WavPcm16::open(path)?;
    let mut meter = SpeechMeter::new(wav.sample_rate(), wav.channels())?;
    let mut buf: Vec<i16> = Vec::with_capacity(8192);
    while wav.read_chunk(&mut buf)? > 0 {
        meter.push(&buf);
    }
    let duration_ms = wav.duration_ms();
    let speech_ms = meter.speech_ms();
    let speech_share = if duration_ms == 0 { 0.0 } else { speech_ms as f64 / duration_ms as f64 };
    Ok(MeterReport { speech_ms, duration_ms, speech_share })
}

/// A WAV file read as interleaved 16-bit PCM in chunks, whatever its sample encoding (PCM 8/16/24/32-bit
/// or 32-bit float): the one WAV decoder of the workspace, shared by [`meter_wav`] and the fingerprint
/// CLI so both see the same samples.
pub struct WavPcm16 {
    reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
    spec: hound::WavSpec,
}

impl WavPcm16 {
    /// Opens `path` and checks the encoding; the rate and channel count are checked by whoever
    /// consumes the samples ([`SpeechMeter::new`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VadError> {
        let reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => {
                Ok(Self { reader, spec })
            }
            (format, bits) => Err(VadError::UnsupportedWav(format!("{format:?} {bits}-bit"))),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.spec.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.spec.channels
    }

    /// The file's length from its header, in ms.
    pub fn duration_ms(&self) -> u64 {
        u64::from(self.reader.duration()) * 1000 / u64::from(self.spec.sample_rate.max(1))
    }

    /// Replaces `buf`'s contents with up to `buf.capacity()` (at least 1024) interleaved samples and
    /// returns how many; 0 at the end of the file.
    pub fn read_chunk(&mut self, buf: &mut Vec<i16>) -> Result<usize, VadError> {
        buf.clear();
        let want = buf.capacity().max(1024);
        match (self.spec.sample_format, self.spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => {
                for s in self.reader.samples::<i16>().take(want) {
                    buf.push(s?);
                }
            }
            (hound::SampleFormat::Float, _) => {
                for s in self.reader.samples::<f32>().take(want) {
                    buf.push((s?.clamp(-1.0, 1.0) * 32767.0).round() as i16);
                }
            }
            (_, bits) => {
                for s in self.reader.samples::<i32>().take(want) {
                    let s = s?;
                    // Keep the top 16 bits; 8-bit samples move up.
                    buf.push(if bits == 8 { (s << 8) as i16 } else { (s >> (bits - 16)) as i16 });
                }
            }
        }
        Ok(buf.len())
    }
}
