//! The Silero VAD v6 16 kHz forward pass, written out by hand.
//!
//! It computes what `silero_vad_openvino_16k.onnx` (PyPI `silero-vad` 6.2.3) computes for one
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
//! How it is computed, for speed (the function is the model's; the order of the sums differs, so
//! the probabilities agree with onnxruntime's to a few 1e-6, not bit for bit):
//!
//! - The STFT basis is a periodic-Hann-windowed DFT (checked when the weights load), so step 2 is
//!   a 256-point FFT of the windowed frame rather than 258 dot products of 256: about 15 times
//!   fewer multiplications. The four frames go through one FFT side by side, one per SIMD lane.
//! - Every conv1d and the LSTM's two matrix products are matrix × vector products over weights
//!   repacked at load time into blocks of [`BLOCK`] outputs × all inputs, output-minor. The inner
//!   loop is then `acc[0..BLOCK] += w[i][0..BLOCK] * x[i]`, which LLVM keeps in vector registers
//!   with no horizontal sums, on the default x86-64 target (SSE2).
//! - Activations are time-major (`[time][channel]`), so a conv's receptive field is one contiguous
//!   slice, and taps that fall in the zero padding are skipped instead of multiplied by zero.
//! - No heap allocation per window: every intermediate is a fixed-size array on the stack.
//! - `tanh` is computed from one `exp` (see [`tanh`]); libm's `tanhf` was a fifth of the time.
//!
//! The weights are shared by every stream; a stream owns only its [`VadState`] (about 1.3 KB).
//! No ML framework, no I/O: the weights are compiled in.

use std::f64::consts::PI;
use std::ops::Range;
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
const FFT_SIZE: usize = 256;
const FFT_STRIDE: usize = 128;
const FRAMES: usize = (PADDED - FFT_SIZE) / FFT_STRIDE + 1; // 4
const BINS: usize = FFT_SIZE / 2 + 1; // 129
const HIDDEN: usize = 128;
/// Outputs computed together by [`Packed::gemv`]: 32 f32 accumulators are 8 SSE registers.
const BLOCK: usize = 32;

/// Weights of `silero_vad_openvino_16k.onnx` (silero-vad 6.2.3), in the format written by
/// `scripts/extract_weights.py`. MIT licence: `weights/LICENSE-silero-vad`.
static WEIGHTS_BLOB: &[u8] = include_bytes!("../weights/silero_vad_v6_16k.bin");
const MAGIC: &[u8; 8] = b"FVADW001";

/// A weight matrix `W[outputs][inputs]` packed for [`Packed::gemv`]: for each block of [`BLOCK`]
/// consecutive outputs, `[inputs][BLOCK]`.
#[derive(Debug)]
struct Packed {
    data: Vec<f32>,
    inputs: usize,
}

impl Packed {
    /// Packs `W[o][i] = weight(o, i)`; `outputs` must be a multiple of [`BLOCK`].
    fn new(outputs: usize, inputs: usize, weight: impl Fn(usize, usize) -> f32) -> Packed {
        assert_eq!(outputs % BLOCK, 0, "outputs must be a multiple of BLOCK");
        let mut data = Vec::with_capacity(outputs * inputs);
        for block in 0..outputs / BLOCK {
            for i in 0..inputs {
                data.extend((0..BLOCK).map(|j| weight(block * BLOCK + j, i)));
            }
        }
        Packed { data, inputs }
    }

    /// `out[o] = init[o] + Σ_{i ∈ rows} W[o][i] · x[i - rows.start]`: the product with the
    /// columns `rows` only (`x.len() == rows.len()`), summed in input order. With `FMA` each step
    /// is one fused multiply-add (one rounding instead of two), which only pays where the CPU has
    /// it: without the `fma` target feature `mul_add` is a libm call.
    #[inline(always)]
    fn gemv<const FMA: bool>(&self, rows: Range<usize>, x: &[f32], init: &[f32], out: &mut [f32]) {
        debug_assert_eq!(rows.len(), x.len());
        debug_assert_eq!(init.len(), out.len());
        let blocks = self.data.chunks_exact(self.inputs * BLOCK);
        for ((block, init), out) in blocks.zip(init.as_chunks::<BLOCK>().0).zip(out.as_chunks_mut::<BLOCK>().0) {
            let mut acc = *init;
            let (weights, _) = block[rows.start * BLOCK..rows.end * BLOCK].as_chunks::<BLOCK>();
            for (w, &xi) in weights.iter().zip(x) {
                for (a, w) in acc.iter_mut().zip(w) {
                    *a = if FMA { w.mul_add(xi, *a) } else { *a + w * xi };
                }
            }
            *out = acc;
        }
    }
}

/// One conv1d layer, kernel 3, padding 1, then ReLU; activations are `[time][channel]`.
#[derive(Debug)]
struct Conv1d {
    /// `W[out][k * channels_in + in]`, packed.
    weight: Packed,
    bias: Vec<f32>,
    channels_in: usize,
    channels_out: usize,
    stride: usize,
}

impl Conv1d {
    /// From ONNX's `weight[out][in][3]`.
    fn new(weight: &[f32], bias: Vec<f32>, channels_in: usize, channels_out: usize, stride: usize) -> Conv1d {
        let weight = Packed::new(channels_out, 3 * channels_in, |o, r| {
            let (k, c) = (r / channels_in, r % channels_in);
            weight[(o * channels_in + c) * 3 + k]
        });
        Conv1d { weight, bias, channels_in, channels_out, stride }
    }

    fn len_out(&self, len_in: usize) -> usize {
        (len_in + 2 - 3) / self.stride + 1
    }

    /// `input` is `[len_in][channels_in]`; `out` is `[len_out][channels_out]`.
    #[inline(always)]
    fn forward_relu<const FMA: bool>(&self, input: &[f32], len_in: usize, out: &mut [f32]) {
        let (cin, cout) = (self.channels_in, self.channels_out);
        debug_assert_eq!(input.len(), len_in * cin);
        debug_assert_eq!(out.len(), self.len_out(len_in) * cout);
        for (t, out_t) in out.chunks_exact_mut(cout).enumerate() {
            // Tap k reads input position t*stride + k - 1; taps outside 0..len_in read padding (0).
            let start = t * self.stride;
            let k_lo = usize::from(start == 0);
            let k_hi = 3.min(len_in + 1 - start);
            let first = start + k_lo - 1;
            let x = &input[first * cin..(first + k_hi - k_lo) * cin];
            self.weight.gemv::<FMA>(k_lo * cin..k_hi * cin, x, &self.bias, out_t);
            for v in out_t.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
}

/// The STFT as an FFT: `|DFT(window · frame)|` for bins `0..=128`.
#[derive(Debug)]
struct Stft {
    /// The analysis window, row 0 of the ONNX basis (`cos 0 = 1`).
    window: [f32; FFT_SIZE],
    /// `e^{-2πi j / 256}` for `j < 128`, as `(re, im)`.
    twiddles: [(f32, f32); FFT_SIZE / 2],
    /// Bit-reversed index of every input position.
    bit_reverse: [u8; FFT_SIZE],
}

impl Stft {
    /// Accepts the ONNX basis `[258][256]` only if it is `window[n]·cos(2πkn/256)` (rows 0..129)
    /// and `-window[n]·sin(2πkn/256)` (rows 129..258) to within 1e-6, which it is for Silero v6.
    fn from_basis(basis: &[f32]) -> Result<Stft, VadError> {
        let mut window = [0.0f32; FFT_SIZE];
        window.copy_from_slice(&basis[..FFT_SIZE]);
        let (re_rows, im_rows) = basis.split_at(BINS * FFT_SIZE);
        for (k, (re_row, im_row)) in re_rows.chunks_exact(FFT_SIZE).zip(im_rows.chunks_exact(FFT_SIZE)).enumerate() {
            for (n, ((&re, &im), &w)) in re_row.iter().zip(im_row).zip(&window).enumerate() {
                let angle = 2.0 * PI * ((k * n) % FFT_SIZE) as f64 / FFT_SIZE as f64;
                let w = f64::from(w);
                let off = (f64::from(re) - w * angle.cos()).abs().max((f64::from(im) + w * angle.sin()).abs());
                if off.is_nan() || off > 1e-6 {
                    return Err(VadError::BadWeights(format!(
                        "the STFT basis is not a windowed DFT (bin {k}, tap {n} is off by {off:e}); \
                         this forward pass computes it as an FFT"
                    )));
                }
            }
        }
        let twiddles = std::array::from_fn(|j| {
            let angle = -2.0 * PI * j as f64 / FFT_SIZE as f64;
            (angle.cos() as f32, angle.sin() as f32)
        });
        let bits = FFT_SIZE.trailing_zeros();
        let bit_reverse = std::array::from_fn(|n| ((n as u32).reverse_bits() >> (32 - bits)) as u8);
        Ok(Stft { window, twiddles, bit_reverse })
    }

    /// Magnitudes of the [`FRAMES`] frames of `x` (stride 128), as `[frame][bin]`.
    #[inline(always)]
    fn magnitudes(&self, x: &[f32; PADDED], out: &mut [f32; FRAMES * BINS]) {
        // Radix-2 decimation-in-time FFT, in place; lane f of every value is frame f.
        let mut re = [[0.0f32; FRAMES]; FFT_SIZE];
        let mut im = [[0.0f32; FRAMES]; FFT_SIZE];
        for (n, (&w, &r)) in self.window.iter().zip(&self.bit_reverse).enumerate() {
            re[usize::from(r)] = std::array::from_fn(|f| x[f * FFT_STRIDE + n] * w);
        }
        let mut half = 1;
        while half < FFT_SIZE {
            let step = FFT_SIZE / (2 * half);
            for (re, im) in re.chunks_exact_mut(2 * half).zip(im.chunks_exact_mut(2 * half)) {
                let (re_a, re_b) = re.split_at_mut(half);
                let (im_a, im_b) = im.split_at_mut(half);
                for (j, (((ra, rb), ia), ib)) in re_a.iter_mut().zip(re_b).zip(im_a).zip(im_b).enumerate() {
                    let (wr, wi) = self.twiddles[j * step];
                    for f in 0..FRAMES {
                        let tr = rb[f] * wr - ib[f] * wi;
                        let ti = rb[f] * wi + ib[f] * wr;
                        rb[f] = ra[f] - tr;
                        ib[f] = ia[f] - ti;
                        ra[f] += tr;
                        ia[f] += ti;
                    }
                }
            }
            half *= 2;
        }
        for (k, (re, im)) in re.iter().zip(&im).take(BINS).enumerate() {
            for (f, frame) in out.chunks_exact_mut(BINS).enumerate() {
                frame[k] = (re[f] * re[f] + im[f] * im[f]).sqrt();
            }
        }
    }
}

/// Which compiled copy of the forward pass runs. The same Rust is compiled twice: once for the
/// build target (the default x86-64 target has only SSE2) and, on x86-64, once more with AVX2 and
/// FMA enabled, chosen at run time when the CPU has both. The two differ only in vector width and
/// in fusing each multiply-add, so their probabilities differ by a few 1e-7 and both stay within
/// the golden test's 1e-4 of onnxruntime's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Compiled for the build target only; runs on every CPU the binary runs on.
    Portable,
    /// 256-bit AVX2 with fused multiply-add (x86-64 CPUs since about 2013-2015).
    Avx2Fma,
}

impl Kernels {
    /// The fastest kernels this CPU supports.
    pub fn detected() -> Kernels {
        if Kernels::Avx2Fma.is_supported() { Kernels::Avx2Fma } else { Kernels::Portable }
    }

    /// Whether this CPU can run these kernels (`Portable` always can).
    pub fn is_supported(self) -> bool {
        match self {
            Kernels::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernels::Avx2Fma => false,
        }
    }

    /// `portable` or `avx2+fma`, for logs and benchmark labels.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2Fma => "avx2+fma",
        }
    }
}

/// The shared, immutable Silero VAD v6 weights. Obtain it with [`SileroModel::embedded`].
#[derive(Debug)]
pub struct SileroModel {
    stft: Stft,
    encoder: [Conv1d; 4],
    /// `[W_ih | W_hh]`, `[512][256]`, gate order i, f, g, o; input `[x ‖ h]`.
    lstm: Packed,
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
        let stft_basis = tensors.expect("stft.forward_basis_buffer", &[258, 1, FFT_SIZE])?;
        let mut conv = |idx: usize, cin: usize, cout: usize, stride: usize| -> Result<Conv1d, VadError> {
            let weight = tensors.expect(&format!("encoder.{idx}.reparam_conv.weight"), &[cout, cin, 3])?;
            let bias = tensors.expect(&format!("encoder.{idx}.reparam_conv.bias"), &[cout])?;
            Ok(Conv1d::new(&weight, bias, cin, cout, stride))
        };
        let encoder = [conv(0, BINS, 128, 1)?, conv(1, 128, 64, 2)?, conv(2, 64, 64, 2)?, conv(3, 64, HIDDEN, 1)?];
        let w_ih = tensors.expect("decoder.rnn.weight_ih", &[4 * HIDDEN, HIDDEN])?;
        let w_hh = tensors.expect("decoder.rnn.weight_hh", &[4 * HIDDEN, HIDDEN])?;
        let b_ih = tensors.expect("decoder.rnn.bias_ih", &[4 * HIDDEN])?;
        let b_hh = tensors.expect("decoder.rnn.bias_hh", &[4 * HIDDEN])?;
        let lstm_bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
        let decoder_w = tensors.expect("decoder.decoder.2.weight", &[1, HIDDEN, 1])?;
        let decoder_b = tensors.expect("decoder.decoder.2.bias", &[1])?[0];
        tensors.finish()?;
        let stft = Stft::from_basis(&stft_basis)?;
        let lstm = Packed::new(4 * HIDDEN, 2 * HIDDEN, |o, i| {
            if i < HIDDEN { w_ih[o * HIDDEN + i] } else { w_hh[o * HIDDEN + i - HIDDEN] }
        });
        Ok(Self { stft, encoder, lstm, lstm_bias, decoder_w, decoder_b })
    }

    /// Run one 512-sample window (f32, `i16 / 32768`), update `state`, return the speech probability.
    /// Uses the fastest [`Kernels`] this CPU supports.
    pub fn predict(&self, state: &mut VadState, window: &[f32; WINDOW_SAMPLES]) -> f32 {
        self.predict_with(Kernels::detected(), state, window)
    }

    /// [`predict`](Self::predict) with the given kernels; kernels this CPU does not support run
    /// [`Kernels::Portable`] instead (check [`Kernels::is_supported`] to know which ran).
    pub fn predict_with(&self, kernels: Kernels, state: &mut VadState, window: &[f32; WINDOW_SAMPLES]) -> f32 {
        match kernels {
            #[cfg(target_arch = "x86_64")]
            // `is_supported` is a cached atomic load (std keeps the CPUID result), nothing per
            // window worth skipping, and it keeps this dispatch sound for any `Kernels` value.
            Kernels::Avx2Fma if kernels.is_supported() => {
                // SAFETY: the CPU has AVX2 and FMA, checked just above; that is the only
                // requirement of a `#[target_feature(enable = "avx2,fma")]` function.
                #[allow(unsafe_code)]
                unsafe {
                    self.forward_avx2_fma(state, window)
                }
            }
            _ => self.forward::<false>(state, window),
        }
    }

    /// The forward pass compiled with AVX2 and FMA: [`forward`](Self::forward) and every kernel it
    /// calls are `#[inline(always)]`, so all of it is generated for these features here.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn forward_avx2_fma(&self, state: &mut VadState, window: &[f32; WINDOW_SAMPLES]) -> f32 {
        self.forward::<true>(state, window)
    }

    /// The forward pass; `FMA` fuses the matrix products' multiply-adds (only where the CPU has FMA).
    #[inline(always)]
    fn forward<const FMA: bool>(&self, state: &mut VadState, window: &[f32; WINDOW_SAMPLES]) -> f32 {
        let mut x = [0.0f32; PADDED];
        x[..CONTEXT_SAMPLES].copy_from_slice(&state.context);
        x[CONTEXT_SAMPLES..INPUT].copy_from_slice(window);
        // ONNX Pad mode=reflect, pads [0, 64]: mirror without repeating the edge sample.
        for i in 0..PADDED - INPUT {
            x[INPUT + i] = x[INPUT - 2 - i];
        }
        state.context.copy_from_slice(&window[WINDOW_SAMPLES - CONTEXT_SAMPLES..]);

        // STFT magnitude, [FRAMES][BINS], then the encoder; every activation is [time][channel].
        let mut spec = [0.0f32; FRAMES * BINS];
        self.stft.magnitudes(&x, &mut spec);
        let [conv1, conv2, conv3, conv4] = &self.encoder;
        let mut h1 = [0.0f32; 4 * 128];
        conv1.forward_relu::<FMA>(&spec, FRAMES, &mut h1);
        let mut h2 = [0.0f32; 2 * 64];
        conv2.forward_relu::<FMA>(&h1, 4, &mut h2);
        let mut h3 = [0.0f32; 64];
        conv3.forward_relu::<FMA>(&h2, 2, &mut h3);

        // LSTM cell, PyTorch gate order i, f, g, o: gates = b + [W_ih | W_hh] · [x ‖ h], where x is
        // the last conv's output, written straight into the first half of [x ‖ h].
        let mut xh = [0.0f32; 2 * HIDDEN];
        conv4.forward_relu::<FMA>(&h3, 1, &mut xh[..HIDDEN]);
        xh[HIDDEN..].copy_from_slice(&state.h);
        let mut gates = [0.0f32; 4 * HIDDEN];
        self.lstm.gemv::<FMA>(0..2 * HIDDEN, &xh, &self.lstm_bias, &mut gates);
        for j in 0..HIDDEN {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[HIDDEN + j]);
            let g = tanh(gates[2 * HIDDEN + j]);
            let o = sigmoid(gates[3 * HIDDEN + j]);
            state.c[j] = f * state.c[j] + i * g;
            state.h[j] = o * tanh(state.c[j]);
        }

        let logit = self.decoder_b + state.h.iter().zip(&self.decoder_w).map(|(h, w)| h.max(0.0) * w).sum::<f32>();
        sigmoid(logit)
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)`: one `exp`, where libm's `tanhf` costs about three times as
/// much (a fifth of the whole forward pass). Its absolute error is a few 1e-7, in a value
/// that is then multiplied into `c` and `h`; saturates to ±1 (`e^{2x}` overflowing is fine).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
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
    fn fft_matches_the_onnx_stft_basis() {
        // The STFT as the ONNX graph computes it: 258 dot products with the basis per frame.
        let mut tensors = BlobReader::new(WEIGHTS_BLOB).unwrap();
        let basis = tensors.expect("stft.forward_basis_buffer", &[258, 1, FFT_SIZE]).unwrap();
        let stft = Stft::from_basis(&basis).unwrap();
        let mut seed = 12345u32;
        let x: [f32; PADDED] = std::array::from_fn(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        });
        let mut got = [0.0f32; FRAMES * BINS];
        stft.magnitudes(&x, &mut got);
        let (re_rows, im_rows) = basis.split_at(BINS * FFT_SIZE);
        for (f, got) in got.chunks_exact(BINS).enumerate() {
            let frame = &x[f * FFT_STRIDE..f * FFT_STRIDE + FFT_SIZE];
            for (k, (re_w, im_w)) in re_rows.chunks_exact(FFT_SIZE).zip(im_rows.chunks_exact(FFT_SIZE)).enumerate() {
                let re: f64 = re_w.iter().zip(frame).map(|(w, x)| f64::from(*w) * f64::from(*x)).sum();
                let im: f64 = im_w.iter().zip(frame).map(|(w, x)| f64::from(*w) * f64::from(*x)).sum();
                let want = (re * re + im * im).sqrt();
                assert!((f64::from(got[k]) - want).abs() < 1e-5, "frame {f} bin {k}: {} vs {want}", got[k]);
            }
        }
    }

    #[test]
    fn a_basis_that_is_not_a_windowed_dft_is_refused() {
        let mut basis = vec![0.0f32; 258 * FFT_SIZE];
        basis[..FFT_SIZE].fill(1.0);
        basis[FFT_SIZE + 3] = 0.5;
        assert!(Stft::from_basis(&basis).is_err());
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
