//! VAD speed on one core: meters a 16 kHz mono 16-bit WAV through [`SpeechMeter`] in 20 ms frames
//! (what the gateway does per client frame), pass after pass with a fresh stream each pass, until
//! at least `min_cpu_s` CPU seconds are spent, and prints the audio seconds processed per CPU
//! second. The per-window probabilities and decisions of the first pass go to `probs_out`.
//!
//! Usage: `vad_speed <clip.wav> [min_cpu_s, default 5] [probs_out]`; `bench/vad.sh` runs it under
//! `taskset -c 0` beside Omi's Python path. Output: one `key=value` line on stdout.
//! `VAD_KERNELS=portable` (or `avx2+fma`) forces those kernels instead of the detected ones.

use std::io::Write;
use std::time::Instant;

use fairuse_vad::{DEFAULT_THRESHOLD, Kernels, SpeechMeter};

/// CPU time of this (single-threaded) process in seconds: the scheduler's nanosecond counter,
/// or user + system clock ticks where that is not available.
fn cpu_seconds() -> f64 {
    if let Ok(s) = std::fs::read_to_string("/proc/self/schedstat")
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok())
        && ns > 0
    {
        return ns as f64 / 1e9;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: vad_speed <clip.wav> [min_cpu_s] [probs_out]");
    let min_cpu: f64 = args.next().map(|s| s.parse().expect("min_cpu_s is a number")).unwrap_or(5.0);
    let probs_out = args.next();
    let kernels = match std::env::var("VAD_KERNELS").as_deref() {
        Err(_) => Kernels::detected(),
        Ok("portable") => Kernels::Portable,
        Ok("avx2+fma") => Kernels::Avx2Fma,
        Ok(other) => panic!("VAD_KERNELS must be portable or avx2+fma, got {other:?}"),
    };
    let new_meter = || SpeechMeter::new(16_000, 1).and_then(|m| m.with_kernels(kernels)).expect("meter");

    let mut reader = hound::WavReader::open(&path).expect("open wav");
    let spec = reader.spec();
    assert!(
        spec.sample_rate == 16_000 && spec.channels == 1 && spec.bits_per_sample == 16,
        "{path}: expected 16 kHz mono 16-bit PCM, got {spec:?}"
    );
    let pcm: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>().expect("pcm16 samples");
    let audio_s = pcm.len() as f64 / 16_000.0;
    const FRAME: usize = 320; // 20 ms

    // First pass: the probabilities and decisions (not timed).
    let mut meter = new_meter();
    let mut probs = Vec::new();
    for frame in pcm.chunks(FRAME) {
        meter.push_with(frame, |p, speech| probs.push((p, speech)));
    }
    let speech_ms = meter.speech_ms();
    if let Some(out) = probs_out {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&out).expect("create probs_out"));
        for (p, speech) in &probs {
            writeln!(f, "{p:.9} {}", u8::from(*speech)).expect("write probs_out");
        }
        f.flush().expect("flush probs_out");
    }

    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut passes = 0u32;
    let mut checksum = 0u64;
    while passes < 3 || cpu_seconds() - cpu0 < min_cpu {
        let mut meter = new_meter();
        for frame in pcm.chunks(FRAME) {
            meter.push(frame);
        }
        checksum += meter.speech_ms();
        passes += 1;
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    assert_eq!(checksum, speech_ms * u64::from(passes), "every pass meters the same speech");
    let audio = audio_s * f64::from(passes);
    println!(
        "impl=rust passes={passes} windows={} audio_s={audio:.3} cpu_s={cpu:.4} wall_s={wall:.4} \
         xrt_cpu={:.1} us_per_window={:.2} speech_ms={speech_ms} threshold={DEFAULT_THRESHOLD} kernels={}",
        probs.len(),
        audio / cpu,
        cpu * 1e6 / (probs.len() as f64 * f64::from(passes)),
        kernels.name(),
    );
}
