//! Streaming resampling of mono f32 audio to 16 kHz, the model's only rate.
//!
//! A windowed-sinc (Blackman) polyphase filter with a fixed phase table: output sample `n` sits at
//! input position `n · rate_in / 16000`; its value is the kernel-weighted sum of the input samples
//! within `HALF_WIDTH` (scaled by the decimation factor) of that position. The cutoff is 0.46 of the
//! lower of the two Nyquist rates, so 48 kHz → 16 kHz is anti-aliased (Omi's linear interpolation is
//! not) and 8 kHz → 16 kHz is a clean band-limited interpolation. Each phase row is normalised to unit
//! DC gain. When `rate_in / gcd(rate_in, 16000)` would need more than `MAX_PHASES` phases (odd rates
//! such as 47 999 Hz), positions are rounded to the nearest of `MAX_PHASES` sub-sample phases, an
//! error below 1/2048 of a sample, far below anything the VAD can notice.
//!
//! The filter is causal on whole input: an output is produced once every input sample its kernel
//! needs has arrived, so chunk boundaries never change the output; samples before the stream start
//! count as zero. The last `HALF_WIDTH`-ish input samples of a stream are never emitted (< 2 ms).
//! Depends on nothing but std.

use crate::model::MODEL_SAMPLE_RATE;

/// Kernel half-width in output-rate samples (taps each side when not decimating).
const HALF_WIDTH: f64 = 16.0;
const MAX_PHASES: u64 = 1024;
/// Fraction of the lower Nyquist rate kept.
const CUTOFF: f64 = 0.92;

#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    rate_in: u64,
    phases: u64,
    /// Taps per phase; tap `j` of output at base position `b` reads input `b - half + 1 + j`.
    taps: usize,
    half: i64,
    /// `[phases][taps]`.
    table: Vec<f32>,
    /// Input samples kept; `buffer[0]` is absolute input index `buffer_start`.
    buffer: Vec<f32>,
    buffer_start: i64,
    /// Index of the next output sample.
    next_out: u64,
}

impl Resampler {
    /// `None` when the input is already at 16 kHz.
    pub(crate) fn new(rate_in: u32) -> Option<Self> {
        if rate_in == MODEL_SAMPLE_RATE {
            return None;
        }
        let rate_in = u64::from(rate_in);
        let rate_out = u64::from(MODEL_SAMPLE_RATE);
        let exact_phases = rate_out / gcd(rate_in, rate_out);
        let phases = exact_phases.min(MAX_PHASES);
        // Cutoff in cycles per input sample; below both Nyquist rates.
        let ratio = rate_out as f64 / rate_in as f64;
        let cutoff = 0.5 * CUTOFF * ratio.min(1.0);
        let half_in = (HALF_WIDTH / ratio.min(1.0)).ceil();
        let half = half_in as i64;
        let taps = 2 * half as usize;
        let mut table = vec![0.0f32; phases as usize * taps];
        for (p, row) in table.chunks_exact_mut(taps).enumerate() {
            let frac = p as f64 / phases as f64;
            let mut weights: Vec<f64> = (0..taps)
                .map(|j| {
                    // Distance from the output position (base + frac) to input base - half + 1 + j.
                    let d = (j as f64 - half as f64 + 1.0) - frac;
                    let window = blackman(d / (half_in + 1.0));
                    2.0 * cutoff * sinc(2.0 * cutoff * d) * window
                })
                .collect();
            let sum: f64 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            for (slot, w) in row.iter_mut().zip(weights) {
                *slot = w as f32;
            }
        }
        Some(Self { rate_in, phases, taps, half, table, buffer: Vec::new(), buffer_start: 0, next_out: 0 })
    }

    /// Append input samples and push every output sample now computable onto `out`.
    pub(crate) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.buffer.extend_from_slice(input);
        let rate_out = u64::from(MODEL_SAMPLE_RATE);
        let available_end = self.buffer_start + self.buffer.len() as i64; // exclusive
        loop {
            let pos = self.next_out * self.rate_in; // input position × rate_out
            let mut base = (pos / rate_out) as i64;
            let mut phase = ((pos % rate_out) * self.phases + rate_out / 2) / rate_out;
            if phase == self.phases {
                phase = 0;
                base += 1;
            }
            let first = base - self.half + 1;
            let last = base + self.half; // inclusive
            if last >= available_end {
                break;
            }
            let row = &self.table[phase as usize * self.taps..(phase as usize + 1) * self.taps];
            let mut acc = 0.0f32;
            for (j, w) in row.iter().enumerate() {
                let idx = first + j as i64 - self.buffer_start;
                // Before the stream start (idx < 0) the input is silence.
                if idx >= 0 {
                    acc += w * self.buffer[idx as usize];
                }
            }
            out.push(acc);
            self.next_out += 1;
        }
        // Drop input no future output can reach.
        let pos = self.next_out * self.rate_in;
        let keep_from = (pos / rate_out) as i64 - self.half;
        let drop = (keep_from - self.buffer_start).clamp(0, self.buffer.len() as i64) as usize;
        if drop > 0 {
            self.buffer.drain(..drop);
            self.buffer_start += drop as i64;
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) }
}

/// Blackman window over `t` in [-1, 1], zero outside.
fn blackman(t: f64) -> f64 {
    if t.abs() >= 1.0 {
        return 0.0;
    }
    let a = std::f64::consts::PI * (t + 1.0);
    0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in_chunks(rate: u32, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut resampler = Resampler::new(rate).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            resampler.process(piece, &mut out);
        }
        out
    }

    fn tone(rate: u32, hz: f64, seconds: f64) -> Vec<f32> {
        (0..(rate as f64 * seconds) as usize)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        for rate in [8_000, 11_025, 22_050, 44_100, 48_000, 47_999] {
            let input = tone(rate, 440.0, 0.5);
            let whole = run_in_chunks(rate, &input, input.len());
            assert_eq!(whole, run_in_chunks(rate, &input, 7), "rate {rate}");
            assert_eq!(whole, run_in_chunks(rate, &input, 441), "rate {rate}");
        }
    }

    #[test]
    fn output_length_follows_the_rate_ratio() {
        for rate in [8_000u32, 44_100, 48_000] {
            let out = run_in_chunks(rate, &tone(rate, 440.0, 1.0), 1000);
            assert!((16_000 - out.len() as i64).abs() < 60, "rate {rate}: {}", out.len());
        }
    }

    #[test]
    fn passband_tone_keeps_its_shape_and_aliasing_tone_is_removed() {
        let rate = 48_000;
        let out = run_in_chunks(rate, &tone(rate, 1000.0, 0.5), 960);
        let expected = tone(16_000, 1000.0, 0.5);
        // Skip the start-up transient; compare the steady state.
        for (got, want) in out.iter().zip(&expected).skip(100) {
            assert!((got - want).abs() < 0.01, "{got} vs {want}");
        }
        // 12 kHz is above the 8 kHz output Nyquist: it must not fold back into the band.
        let aliased = run_in_chunks(rate, &tone(rate, 12_000.0, 0.5), 960);
        let peak = aliased.iter().skip(100).fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak < 0.01, "peak {peak}");
    }

    #[test]
    fn sixteen_khz_needs_no_resampler() {
        assert!(Resampler::new(16_000).is_none());
    }
}
