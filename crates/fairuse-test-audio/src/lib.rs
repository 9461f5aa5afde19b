//! Test support: audio synthesised at test time with espeak-ng and sox, so no recording is
//! committed and every test can say exactly what it played. Used as a dev-dependency by the
//! crates whose tests need speech (the fingerprint matcher, `fairuse match`, the gateway's
//! duplicate audio); never by shipped code.
//!
//! The tools must be installed (`apt-get install espeak-ng sox`, which `bash scripts/test` does):
//! every helper fails with that hint, never skips.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const INSTALL_HINT: &str = "install it with `apt-get install espeak-ng sox libchromaprint-tools` (Debian/Ubuntu), or \
     run `bash scripts/test`, which installs them; these tests synthesise their audio at test time";

/// Panics unless each `(tool, version flag)` runs.
pub fn require_tools(tools: &[(&str, &str)]) {
    for (tool, flag) in tools {
        match Command::new(tool).arg(flag).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("`{tool} {flag}` failed ({}); {INSTALL_HINT}", out.status),
            Err(e) => panic!("{tool} is not installed or not on PATH ({e}); {INSTALL_HINT}"),
        }
    }
}

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after the process, `tag` and a counter.
    pub fn new(tag: &str) -> Self {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("fairuse-audio-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    /// The path of `name` inside the directory.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("temp path is UTF-8").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `tool` and answers its stdout; panics with its stderr when it fails.
pub fn run(tool: &str, args: &[&str]) -> String {
    let out =
        Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("cannot run {tool} ({e}); {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "`{tool} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// sox in repeatable mode (`-R`: fixed seeds for `synth` noise) without dither (`-D`).
pub fn sox(args: &[&str]) {
    let mut all = vec!["-R", "-D"];
    all.extend_from_slice(args);
    run("sox", &all);
}

pub fn read_wav(path: &str) -> (Vec<i16>, hound::WavSpec) {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = reader.spec();
    let samples = reader.samples::<i16>().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{path}: {e}"));
    (samples, spec)
}

pub fn write_wav(path: &str, samples: &[i16], spec: hound::WavSpec) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{path}: {e}"));
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

/// `text` read by espeak-ng `voice` at 165 words a minute, as 16 kHz mono 16-bit.
pub fn speak(dir: &TempDir, name: &str, voice: &str, text: &str) -> String {
    let raw = dir.file(&format!("{name}-espeak.wav"));
    let out = dir.file(&format!("{name}.wav"));
    run("espeak-ng", &["-v", voice, "-s", "165", "-w", &raw, text]);
    sox(&[&raw, "-b", "16", "-c", "1", &out, "rate", "16000"]);
    out
}

/// RMS of the samples within 40 dB of the peak: the speech, not the gaps.
pub fn active_rms(samples: &[i16]) -> f64 {
    let peak = samples.iter().map(|&x| f64::from(x).abs()).fold(0.0, f64::max);
    let active: Vec<f64> = samples.iter().map(|&x| f64::from(x)).filter(|x| x.abs() >= peak / 100.0).collect();
    (active.iter().map(|x| x * x).sum::<f64>() / active.len().max(1) as f64).sqrt()
}

/// `signal + noise` (a sox `synth` kind: `pinknoise`, `whitenoise`, ...) with the noise scaled to
/// `snr_db` below the signal's active RMS; same layout as the signal.
pub fn add_noise(dir: &TempDir, name: &str, signal: &str, noise_kind: &str, snr_db: f64) -> String {
    let (samples, spec) = read_wav(signal);
    let noise_path = dir.file(&format!("{name}-noise.wav"));
    let seconds = samples.len() as f64 / f64::from(spec.sample_rate) / f64::from(spec.channels) + 0.1;
    sox(&[
        "-n",
        "-r",
        &spec.sample_rate.to_string(),
        "-c",
        &spec.channels.to_string(),
        "-b",
        "16",
        &noise_path,
        "synth",
        &format!("{seconds:.3}"),
        noise_kind,
        "vol",
        "0.5",
    ]);
    let (noise, _) = read_wav(&noise_path);
    let noise_rms = (noise.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    let gain = active_rms(&samples) / 10f64.powf(snr_db / 20.0) / noise_rms;
    let mixed: Vec<i16> = samples
        .iter()
        .zip(noise.iter().chain(std::iter::repeat(&0)))
        .map(|(&s, &n)| (f64::from(s) + gain * f64::from(n)).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let out = dir.file(&format!("{name}.wav"));
    write_wav(&out, &mixed, spec);
    out
}

/// Another device hearing `input` played aloud: 44.1 kHz stereo, −6 dB, sox `reverb 50`, pink
/// noise `snr_db` below the speech.
pub fn replay_channel(dir: &TempDir, name: &str, input: &str, snr_db: f64) -> String {
    let chan = dir.file(&format!("{name}-channel.wav"));
    sox(&[input, "-r", "44100", "-c", "2", "-b", "16", &chan, "gain", "-6", "reverb", "50"]);
    add_noise(dir, name, &chan, "pinknoise", snr_db)
}
