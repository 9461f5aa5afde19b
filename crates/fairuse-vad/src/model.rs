//! The Silero VAD v6 16 kHz forward pass, written out by hand.
//!
//! It computes exactly what `silero_vad_openvino_16k.onnx` (PyPI `silero-vad` 6.2.3) computes for one
//! `input[1, 576]` + `state[2, 1, 128]` call; `scripts/extract_weights.py --describe` prints that graph.
//! Per window:
//!
//! 1. `x` = 64 samples of context ‖ 512 new samples, reflect-padded by 64 on the right (640 samples).
//! 2. "STFT": conv1d with the `[258, 1, 256]` basis, stride 128, no padding → 4 frames; magnitude
//!    `sqrt(re² + im²)` of channels `0..129` (re) and `129..258` (im).
//! 3. Four conv1d (kernel 3, padding 1) + ReLU: 129→128 s1, 128→64 s2, 64→64 s2, 64→128 s1.
//! 4. One LSTM cell step, 128→128, PyTorch gate order i, f, g, o, with the stream's `(h, c)`.
//! 5. ReLU(h) → 1×1 conv 128→1 → sigmoid = speech probability.
//!
//! The weights are shared by every stream; a stream owns only its [`VadState`] (about 1.3 KB).
//! No ML framework, no I/O: the weights are compiled in.

use std::sync::OnceLock;

use crate::VadError;

/// Samples per window at 16 kHz (32 ms).
pub const WINDOW_SAMPLES: usize = 512;
/// Samples of the previous window prepended to each window.
pub const CONTEXT_SAMPLES: usize = 64;
/// The model's only sample rate.
pub const MODEL_SAMPLE_RATE: u32 = 16_000;

const INPUT: usize = CONTEXT_SAMPLES + WINDOW_SAMPLES; // 576
const PADDED: usize = INPUT + 64; // 640
const FFT_KERNEL: usize = 256;
const FFT_STRIDE: usize = 128;
const FRAMES: usize = (PADDED - FFT_KERNEL) / FFT_STRIDE + 1; // 4
const BINS: usize = 129;
const HIDDEN: usize = 128;

/// Weights of `silero_vad_openvino_16k.onnx` (silero-vad 6.2.3), in the format written by
/// `scripts/extract_weights.py`. MIT licence: `weights/LICENSE-silero-vad`.
static WEIGHTS_BLOB: &[u8] = include_bytes!("../weights/silero_vad_v6_16k.bin");
const MAGIC: &[u8; 8] = b"FVADW001";

/// One conv1d layer: `weight[out][in][kernel]`, `bias[out]`.
#[derive(Debug)]
struct Conv1d {
    weight: Vec<f32>,
    bias: Vec<f32>,
    channels_in: usize,
    channels_out: usize,
    stride: usize,
}

impl Conv1d {
    /// Kernel 3, padding 1, then ReLU. `input` is `[channels_in][len_in]`.
    ///
    /// Gathers each output position's receptive field (`[channels_in][3]`, zeros for the padding)
    /// into one column, so every output value is a single dot product with the contiguous
    /// `weight[o]` row: fewer bounds checks and branches, which keeps debug-build tests fast.
    fn forward_relu(&self, input: &[f32], len_in: usize) -> (Vec<f32>, usize) {
        let len_out = (len_in + 2 - 3) / self.stride + 1;
        let row_len = self.channels_in * 3;
        let mut columns = vec![0.0f32; len_out * row_len];
        for (t, column) in columns.chunks_exact_mut(row_len).enumerate() {
            for (taps, row) in column.chunks_exact_mut(3).zip(input.chunks_exact(len_in)) {
                for (k, tap) in taps.iter_mut().enumerate() {
                    // Input position of tap k is t*stride + k - 1 (padding 1).
                    let pos = t * self.stride + k;
                    if pos >= 1 && pos - 1 < len_in {
                        *tap = row[pos - 1];
                    }
                }
            }
        }
        let mut out = vec![0.0f32; self.channels_out * len_out];
        for ((w_o, bias), out_row) in
            self.weight.chunks_exact(row_len).zip(&self.bias).zip(out.chunks_exact_mut(len_out))
        {
            for (slot, column) in out_row.iter_mut().zip(columns.chunks_exact(row_len)) {
                *slot = (bias + dot(w_o, column)).max(0.0);
            }
        }
        (out, len_out)
    }
}

/// The shared, immutable Silero VAD v6 weights. Obtain it with [`SileroModel::embedded`].
#[derive(Debug)]
pub struct SileroModel {
    /// `[258][256]`: rows 0..129 real, 129..258 imaginary parts of the windowed DFT basis.
    stft_basis: Vec<f32>,
    encoder: [Conv1d; 4],
    /// `[512][128]`, gate order i, f, g, o.
    lstm_w_ih: Vec<f32>,
    lstm_w_hh: Vec<f32>,
    /// `bias_ih + bias_hh`, `[512]`.
    lstm_bias: Vec<f32>,
    decoder_w: Vec<f32>,
    decoder_b: f32,
}

/// The per-stream recurrent state: LSTM `(h, c)` and the last 64 samples seen.
#[derive(Debug, Clone)]
pub struct VadState {
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
    context: [f32; CONTEXT_SAMPLES],
}

impl Default for VadState {
    fn default() -> Self {
        Self { h: [0.0; HIDDEN], c: [0.0; HIDDEN], context: [0.0; CONTEXT_SAMPLES] }
    }
}

impl VadState {
    /// A fresh stream: zero LSTM state, zero context.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SileroModel {
    /// The compiled-in model, parsed once per process and shared by every stream.
    pub fn embedded() -> Result<&'static SileroModel, VadError> {
        static MODEL: OnceLock<Result<SileroModel, VadError>> = OnceLock::new();
        // A corrupt blob is a build defect, but it is still reported, not panicked on.
        MODEL
            .get_or_init(|| SileroModel::from_blob(WEIGHTS_BLOB))
            .as_ref()
            .map_err(|e| VadError::BadWeights(e.to_string()))
    }

    /// Parse a weights blob written by `scripts/extract_weights.py`, checking every tensor's shape.
    pub fn from_blob(blob: &[u8]) -> Result<Self, VadError> {
        let mut tensors = BlobReader::new(blob)?;
        let stft_basis = tensors.expect("stft.forward_basis_buffer", &[258, 1, FFT_KERNEL])?;
        let mut conv = |idx: usize, cin: usize, cout: usize, stride: usize| -> Result<Conv1d, VadError> {
            let weight = tensors.expect(&format!("encoder.{idx}.reparam_conv.weight"), &[cout, cin, 3])?;
            let bias = tensors.expect(&format!("encoder.{idx}.reparam_conv.bias"), &[cout])?;
            Ok(Conv1d { weight, bias, channels_in: cin, channels_out: cout, stride })
        };
        let encoder = [conv(0, BINS, 128, 1)?, conv(1, 128, 64, 2)?, conv(2, 64, 64, 2)?, conv(3, 64, HIDDEN, 1)?];
        let lstm_w_ih = tensors.expect("decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let lstm_w_hh = tensors.expect("decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN])?;
        let b_ih = tensors.expect("decoder.rnn.bias_ih", &[4 * HIDDEN])?;
        let b_hh = tensors.expect("decoder.rnn.bias_hh", &[4 * HIDDEN])?;
        let lstm_bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
        let decoder_w = tensors.expect("decoder.decoder.2.weight", &[1, HIDDEN, 1])?;
        let decoder_b = tensors.expect("decoder.decoder.2.bias", &[1])?[0];
        tensors.finish()?;
        Ok(Self { stft_basis, encoder, lstm_w_ih, lstm_w_hh, lstm_bias, decoder_w, decoder_b })
    }

    /// Run one 512-sample window (f32, `i16 / 32768`), update `state`, return the speech probability.
    pub fn predict(&self, state: &mut VadState, window: &[f32; WINDOW_SAMPLES]) -> f32 {
        let mut x = [0.0f32; PADDED];
        x[..CONTEXT_SAMPLES].copy_from_slice(&state.context);
        x[CONTEXT_SAMPLES..INPUT].copy_from_slice(window);
        // ONNX Pad mode=reflect, pads [0, 64]: mirror without repeating the edge sample.
        for i in 0..PADDED - INPUT {
            x[INPUT + i] = x[INPUT - 2 - i];
        }
        state.context.copy_from_slice(&window[WINDOW_SAMPLES - CONTEXT_SAMPLES..]);

        // STFT magnitude, [BINS][FRAMES].
        let mut spec = vec![0.0f32; BINS * FRAMES];
        let (re_rows, im_rows) = self.stft_basis.split_at(BINS * FFT_KERNEL);
        for f in 0..FRAMES {
            let frame = &x[f * FFT_STRIDE..f * FFT_STRIDE + FFT_KERNEL];
            for (b, (re_w, im_w)) in re_rows.chunks_exact(FFT_KERNEL).zip(im_rows.chunks_exact(FFT_KERNEL)).enumerate()
            {
                let re = dot(re_w, frame);
                let im = dot(im_w, frame);
                spec[b * FRAMES + f] = (re * re + im * im).sqrt();
            }
        }

        let mut features = spec;
        let mut len = FRAMES;
        for layer in &self.encoder {
            (features, len) = layer.forward_relu(&features, len);
        }
        debug_assert_eq!(len, 1);
        debug_assert_eq!(features.len(), HIDDEN);

        // LSTM cell, PyTorch gate order i, f, g, o.
        let mut gates = [0.0f32; 4 * HIDDEN];
        for (g, slot) in gates.iter_mut().enumerate() {
            let w_ih = &self.lstm_w_ih[g * HIDDEN..(g + 1) * HIDDEN];
            let w_hh = &self.lstm_w_hh[g * HIDDEN..(g + 1) * HIDDEN];
            *slot = self.lstm_bias[g] + dot(w_ih, &features) + dot(w_hh, &state.h);
        }
        for j in 0..HIDDEN {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[HIDDEN + j]);
            let g = gates[2 * HIDDEN + j].tanh();
            let o = sigmoid(gates[3 * HIDDEN + j]);
            state.c[j] = f * state.c[j] + i * g;
            state.h[j] = o * state.c[j].tanh();
        }

        let logit = self.decoder_b + state.h.iter().zip(&self.decoder_w).map(|(h, w)| h.max(0.0) * w).sum::<f32>();
        sigmoid(logit)
    }
}

/// Dot product over the common length, with four partial sums (also quicker in debug builds).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 4];
    let mut a4 = a.chunks_exact(4);
    let mut b4 = b.chunks_exact(4);
    for (x, y) in a4.by_ref().zip(b4.by_ref()) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let tail: f32 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Walks the tensors of a weights blob in order.
struct BlobReader<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> BlobReader<'a> {
    fn new(blob: &'a [u8]) -> Result<Self, VadError> {
        let rest = blob.strip_prefix(MAGIC.as_slice()).ok_or(VadError::BadWeights("bad magic".into()))?;
        let mut reader = Self { rest, remaining: 0 };
        reader.remaining = reader.u32()?;
        Ok(reader)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], VadError> {
        if self.rest.len() < n {
            return Err(VadError::BadWeights("truncated".into()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, VadError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Read the next tensor, which must be `name` with shape `dims`.
    fn expect(&mut self, name: &str, dims: &[usize]) -> Result<Vec<f32>, VadError> {
        if self.remaining == 0 {
            return Err(VadError::BadWeights(format!("missing tensor {name}")));
        }
        self.remaining -= 1;
        let name_len = self.take(2)?;
        let name_len = u16::from_le_bytes([name_len[0], name_len[1]]) as usize;
        let found = self.take(name_len)?;
        if found != name.as_bytes() {
            return Err(VadError::BadWeights(format!(
                "expected tensor {name}, found {}",
                String::from_utf8_lossy(found)
            )));
        }
        let rank = self.take(1)?[0] as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(self.u32()? as usize);
        }
        if shape != dims {
            return Err(VadError::BadWeights(format!("tensor {name} has shape {shape:?}, expected {dims:?}")));
        }
        let count: usize = dims.iter().product();
        let data = self.take(count * 4)?;
        Ok(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn finish(self) -> Result<(), VadError> {
        if self.remaining != 0 || !self.rest.is_empty() {
            return Err(VadError::BadWeights("trailing data".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_weights_parse() {
        assert!(SileroModel::embedded().is_ok());
    }

    #[test]
    fn corrupt_blob_is_an_error_not_a_panic() {
        assert!(SileroModel::from_blob(b"nope").is_err());
        assert!(SileroModel::from_blob(&WEIGHTS_BLOB[..1000]).is_err());
    }

    #[test]
    fn silence_is_not_speech() {
        let model = SileroModel::embedded().unwrap();
        let mut state = VadState::new();
        for _ in 0..10 {
            assert!(model.predict(&mut state, &[0.0; WINDOW_SAMPLES]) < 0.1);
        }
    }
}
