//! The Rust forward pass and meter against onnxruntime's probabilities for the committed fixture
//! (`scripts/golden.py` regenerates it).

use std::path::PathBuf;

use fairuse_vad::{Kernels, SileroModel, SpeechMeter, VadError, VadState, WINDOW_MS, WINDOW_SAMPLES, meter_wav};

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_wav(name: &str) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(fixture(name)).expect("fixture wav");
    let rate = reader.spec().sample_rate;
    (reader.samples::<i16>().collect::<Result<_, _>>().expect("pcm16 samples"), rate)
}

fn golden_probabilities() -> Vec<f32> {
    let text = std::fs::read_to_string(fixture("speech_16k.json")).expect("golden json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    json["probabilities"].as_array().expect("array").iter().map(|p| p.as_f64().expect("number") as f32).collect()
}

fn golden_speech_ms(threshold: f32) -> u64 {
    golden_speech_ms_in(threshold, usize::MAX)
}

/// Speech onnxruntime's probabilities give in the first `windows` windows.
fn golden_speech_ms_in(threshold: f32, windows: usize) -> u64 {
    golden_probabilities().iter().take(windows).filter(|&&p| p > threshold).count() as u64 * WINDOW_MS
}

/// Every window's probability from `kernels`, in order, through [`SileroModel::predict_with`].
fn probabilities_with(kernels: Kernels) -> Vec<f32> {
    let (pcm, rate) = read_wav("speech_16k.wav");
    assert_eq!(rate, 16_000);
    let model = SileroModel::embedded().unwrap();
    let mut state = VadState::new();
    let mut window = [0.0f32; WINDOW_SAMPLES];
    pcm.chunks_exact(WINDOW_SAMPLES)
        .map(|chunk| {
            for (slot, &s) in window.iter_mut().zip(chunk) {
                *slot = f32::from(s) / 32768.0;
            }
            model.predict_with(kernels, &mut state, &window)
        })
        .collect()
}

/// Each probability within 1e-4 of onnxruntime's, and the same decision at 0.65.
fn assert_matches_onnxruntime(kernels: Kernels, got: &[f32]) {
    let golden = golden_probabilities();
    assert_eq!(got.len(), golden.len());
    let mut max_diff = 0.0f32;
    for (i, (got, want)) in got.iter().zip(&golden).enumerate() {
        let diff = (got - want).abs();
        assert!(diff <= TOLERANCE, "{} window {i}: rust {got} vs onnxruntime {want}", kernels.name());
        assert_eq!(*got > 0.65, *want > 0.65, "{} window {i}: decision differs ({got} vs {want})", kernels.name());
        max_diff = max_diff.max(diff);
    }
    println!("{}: max |p_rust - p_onnxruntime| over {} windows: {max_diff:e}", kernels.name(), got.len());
}

#[test]
fn every_window_matches_onnxruntime_within_1e_4() {
    // `predict` runs the detected kernels (AVX2+FMA on the machines this is built and tested on).
    let model = SileroModel::embedded().unwrap();
    let (pcm, _) = read_wav("speech_16k.wav");
    let mut state = VadState::new();
    let got: Vec<f32> = pcm
        .chunks_exact(WINDOW_SAMPLES)
        .map(|chunk| {
            let window: [f32; WINDOW_SAMPLES] = std::array::from_fn(|i| f32::from(chunk[i]) / 32768.0);
            model.predict(&mut state, &window)
        })
        .collect();
    assert_matches_onnxruntime(Kernels::detected(), &got);
}

#[test]
fn the_portable_fallback_matches_onnxruntime_within_1e_4() {
    assert_matches_onnxruntime(Kernels::Portable, &probabilities_with(Kernels::Portable));
}

#[test]
fn the_avx2_fma_kernels_match_onnxruntime_and_the_portable_ones_where_the_cpu_has_them() {
    // On a CPU without AVX2+FMA this runs the portable kernels too (and says so): the dispatch
    // must fall back, never fault.
    let avx = probabilities_with(Kernels::Avx2Fma);
    println!("avx2+fma supported here: {}", Kernels::Avx2Fma.is_supported());
    assert_matches_onnxruntime(Kernels::Avx2Fma, &avx);
    let portable = probabilities_with(Kernels::Portable);
    for (i, (a, p)) in avx.iter().zip(&portable).enumerate() {
        // Wider vectors and fused multiply-adds only reorder roundings.
        assert!((a - p).abs() <= 1e-5, "window {i}: avx2+fma {a} vs portable {p}");
    }
}

#[test]
fn a_meter_runs_the_kernels_it_is_given_and_refuses_ones_the_cpu_lacks() {
    let (pcm, _) = read_wav("speech_16k.wav");
    for kernels in [Kernels::Portable, Kernels::Avx2Fma] {
        let meter = SpeechMeter::new(16_000, 1).unwrap().with_kernels(kernels);
        if !kernels.is_supported() {
            assert!(matches!(meter, Err(VadError::UnsupportedKernels(k)) if k == kernels));
            continue;
        }
        let mut meter = meter.unwrap();
        assert_eq!(meter.kernels(), kernels);
        for chunk in pcm.chunks(320) {
            meter.push(chunk);
        }
        assert_eq!(meter.speech_ms(), golden_speech_ms(0.65), "{}", kernels.name());
    }
    assert_eq!(SpeechMeter::new(16_000, 1).unwrap().kernels(), Kernels::detected());
}

#[test]
fn meter_in_200_ms_chunks_sees_the_same_windows_as_onnxruntime() {
    let (pcm, _) = read_wav("speech_16k.wav");
    let golden = golden_probabilities();
    let mut meter = SpeechMeter::new(16_000, 1).unwrap();
    let mut seen = Vec::new();
    for chunk in pcm.chunks(3_200) {
        meter.push_with(chunk, |p, _| seen.push(p));
    }
    assert_eq!(seen.len(), golden.len());
    for (got, want) in seen.iter().zip(&golden) {
        assert!((got - want).abs() <= TOLERANCE);
    }
    assert_eq!(meter.speech_ms(), golden_speech_ms(0.65));
    assert!(meter.speech_ms() > 2_000, "the two utterances are speech: {}", meter.speech_ms());
}

#[test]
fn chunk_size_does_not_change_the_total() {
    let (pcm, _) = read_wav("speech_16k.wav");
    let expected = golden_speech_ms(0.65);
    // 16, 20 and 100 ms at 16 kHz; 200 ms is covered above (debug-build tests run ~7 ms a window).
    for chunk in [256, 320, 1_600] {
        let mut meter = SpeechMeter::new(16_000, 1).unwrap();
        let added: u64 = pcm.chunks(chunk).map(|c| meter.push(c)).sum();
        assert_eq!(meter.speech_ms(), expected, "chunk of {chunk} samples");
        assert_eq!(added, expected);
    }
}

#[test]
fn stereo_is_averaged_and_split_frames_are_joined() {
    let (pcm, _) = read_wav("speech_16k.wav");
    // The first 64 windows (2 s) hold the first utterance; that keeps the test quick.
    let pcm = &pcm[..64 * WINDOW_SAMPLES];
    // Identical channels average back to the mono signal exactly.
    let stereo: Vec<i16> = pcm.iter().flat_map(|&s| [s, s]).collect();
    let mut meter = SpeechMeter::new(16_000, 2).unwrap();
    // An odd chunk length splits a left/right pair across every other call.
    for chunk in stereo.chunks(641) {
        meter.push(chunk);
    }
    assert_eq!(meter.speech_ms(), golden_speech_ms_in(0.65, 64));
    assert!(meter.speech_ms() > 0);
    assert_eq!(meter.input_ms(), 2_048);
}

#[test]
fn eight_khz_input_is_resampled_to_about_the_same_speech() {
    let (pcm, rate) = read_wav("speech_8k.wav");
    assert_eq!(rate, 8_000);
    let mut meter = SpeechMeter::new(8_000, 1).unwrap();
    for chunk in pcm.chunks(160) {
        meter.push(chunk);
    }
    let expected = golden_speech_ms(0.65) as f64;
    let got = meter.speech_ms() as f64;
    // Telephone bandwidth loses everything above 4 kHz; the count may move a little, not much.
    assert!((got - expected).abs() / expected < 0.10, "8 kHz: {got} ms vs 16 kHz: {expected} ms");
}

#[test]
fn meter_wav_reports_speech_duration_and_share() {
    let (pcm, _) = read_wav("speech_16k.wav");
    let duration_ms = pcm.len() as u64 * 1000 / 16_000;
    let report = meter_wav(fixture("speech_16k.wav")).unwrap();
    assert_eq!(report.speech_ms, golden_speech_ms(0.65));
    assert_eq!(report.duration_ms, duration_ms);
    assert!((report.speech_share - report.speech_ms as f64 / duration_ms as f64).abs() < 1e-12);
}

#[test]
fn missing_wav_is_an_error() {
    assert!(matches!(meter_wav(fixture("does-not-exist.wav")), Err(VadError::Wav(_))));
}

#[test]
fn tone_and_noise_count_as_zero() {
    // 1 s of a 440 Hz tone with harmonics, then 1 s of deterministic white noise (LCG).
    let mut pcm: Vec<i16> = (0..16_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let v: f64 = (1..=4).map(|k| (2.0 * std::f64::consts::PI * 440.0 * k as f64 * t).sin() / k as f64).sum();
            (v * 6_000.0) as i16
        })
        .collect();
    let mut seed: u32 = 12_345;
    pcm.extend((0..16_000).map(|_| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((seed >> 16) as i16) / 4
    }));
    let mut meter = SpeechMeter::new(16_000, 1).unwrap();
    meter.push(&pcm);
    assert_eq!(meter.speech_ms(), 0);
}

#[test]
fn bad_configurations_are_rejected() {
    assert!(matches!(SpeechMeter::new(7_999, 1), Err(VadError::UnsupportedSampleRate(7_999))));
    assert!(matches!(SpeechMeter::new(48_001, 1), Err(VadError::UnsupportedSampleRate(_))));
    assert!(matches!(SpeechMeter::new(16_000, 3), Err(VadError::UnsupportedChannels(3))));
    assert!(matches!(SpeechMeter::new(16_000, 0), Err(VadError::UnsupportedChannels(0))));
    assert!(SpeechMeter::new(16_000, 1).unwrap().with_threshold(1.5).is_err());
    assert!(SpeechMeter::new(16_000, 1).unwrap().with_threshold(f32::NAN).is_err());
    assert!(SpeechMeter::new(44_100, 2).unwrap().with_threshold(0.5).is_ok());
}

#[test]
fn a_higher_threshold_counts_no_more_speech() {
    let (pcm, _) = read_wav("speech_16k.wav");
    let mut strict = SpeechMeter::new(16_000, 1).unwrap().with_threshold(0.9).unwrap();
    strict.push(&pcm[..64 * WINDOW_SAMPLES]);
    assert_eq!(strict.speech_ms(), golden_speech_ms_in(0.9, 64));
    assert!(strict.speech_ms() < golden_speech_ms_in(0.65, 64));
}
