//! Fingerprint cost beside the VAD's on the same audio, in one process: a 16 kHz mono 16-bit WAV
//! is fed in 20 ms frames (what the gateway does per client frame) to a fresh [`SpeechMeter`], then
//! to a fresh [`FingerprintStream`], alternating pass after pass until each has spent at least
//! `min_cpu_s` CPU seconds; prints audio seconds per CPU second for both, their ratio, and the heap
//! one fingerprint stream holds after a minute of audio (a counting allocator).
//!
//! Usage: `fingerprint_speed <clip.wav> [min_cpu_s, default 5]`; `bench/fingerprint.sh` runs it
//! under `taskset -c 0`. Output: one `key=value` line on stdout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use fairuse_fingerprint::FingerprintStream;
use fairuse_vad::SpeechMeter;

/// Counts live heap bytes, for the per-stream memory figure.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time of this (single-threaded) process in seconds (as `vad_speed` measures it).
fn cpu_seconds() -> f64 {
    if let Ok(s) = std::fs::read_to_string("/proc/self/schedstat")
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok())
        && ns > 0
    {
        return ns as f64 / 1e9;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / 100.0
}

const FRAME: usize = 320; // 20 ms at 16 kHz

fn vad_pass(pcm: &[i16]) -> u64 {
    let mut meter = SpeechMeter::new(16_000, 1).expect("meter");
    for frame in pcm.chunks(FRAME) {
        meter.push(frame);
    }
    meter.speech_ms()
}

fn fingerprint_pass(pcm: &[i16]) -> usize {
    let mut stream = FingerprintStream::new(16_000, 1).expect("stream");
    for frame in pcm.chunks(FRAME) {
        stream.push(frame);
    }
    stream.finish().len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: fingerprint_speed <clip.wav> [min_cpu_s]");
    let min_cpu: f64 = args.next().map(|s| s.parse().expect("min_cpu_s is a number")).unwrap_or(5.0);
    let (pcm, spec) = fairuse_test_audio::read_wav(&path);
    assert!(
        spec.sample_rate == 16_000 && spec.channels == 1 && spec.bits_per_sample == 16,
        "{path}: expected 16 kHz mono 16-bit PCM, got {spec:?}"
    );
    let audio_s = pcm.len() as f64 / 16_000.0;

    // Heap of one stream after 60 s of audio (the clip looped), codes included.
    let minute: Vec<i16> = pcm.iter().copied().cycle().take(60 * 16_000).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut stream = FingerprintStream::new(16_000, 1).expect("stream");
    for frame in minute.chunks(FRAME) {
        stream.push(frame);
    }
    let heap_bytes = LIVE.load(Ordering::Relaxed) - before;
    let codes_per_minute = stream.codes().len();
    drop(stream);

    let (expect_speech, expect_codes) = (vad_pass(&pcm), fingerprint_pass(&pcm));
    let (mut vad_cpu, mut fp_cpu, mut passes) = (0.0, 0.0, 0u32);
    while passes < 3 || vad_cpu < min_cpu || fp_cpu < min_cpu {
        let t0 = cpu_seconds();
        assert_eq!(vad_pass(&pcm), expect_speech);
        let t1 = cpu_seconds();
        assert_eq!(fingerprint_pass(&pcm), expect_codes);
        let t2 = cpu_seconds();
        vad_cpu += t1 - t0;
        fp_cpu += t2 - t1;
        passes += 1;
    }
    let audio = audio_s * f64::from(passes);
    println!(
        "passes={passes} audio_s={audio:.3} vad_cpu_s={vad_cpu:.4} fp_cpu_s={fp_cpu:.4} vad_xrt={:.1} fp_xrt={:.1} \
         vad_us_per_s={:.1} fp_us_per_s={:.1} fp_over_vad={:.3} heap_bytes_per_stream={heap_bytes} \
         codes_per_minute={codes_per_minute}",
        audio / vad_cpu,
        audio / fp_cpu,
        vad_cpu * 1e6 / audio,
        fp_cpu * 1e6 / audio,
        fp_cpu / vad_cpu,
    );
}
