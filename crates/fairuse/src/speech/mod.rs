//! Speech metering for the streaming gateway: the Silero VAD of `fairuse-vad` behind the
//! server's per-stream meter port, with the acoustic fingerprint of `fairuse-fingerprint` fed the
//! same samples and the VAD's verdicts when the policy's `[fingerprint]` is on. Only the
//! composition root knows these crates. The fingerprint itself runs off the frame path
//! ([`prints`]).

mod prints;

use fairuse_domain::sessions::HashSample;
use fairuse_fingerprint::FingerprintStream;
use fairuse_server::gateway::{MeterFactory, StreamMeter};
use fairuse_vad::SpeechMeter;

use prints::OffPathPrint;

/// Makes one VAD meter per stream (each with its own recurrent state).
pub struct VadMeters;

struct VadStream(SpeechMeter, Option<OffPathPrint>);

impl StreamMeter for VadStream {
    fn push(&mut self, pcm: &[i16], on_window: &mut dyn FnMut(bool)) {
        match &mut self.1 {
            None => {
                self.0.push_with(pcm, |_, is_speech| on_window(is_speech));
            }
            Some(print) => {
                print.push(pcm);
                self.0.push_with(pcm, |_, is_speech| {
                    print.mark_window(is_speech);
                    on_window(is_speech)
                });
                print.poll(false);
            }
        }
    }

    fn take_hashes(&mut self, out: &mut Vec<HashSample>) {
        if let Some(print) = &mut self.1 {
            print.poll(false);
            print.take(out);
        }
    }

    fn flush_prints(&mut self) {
        if let Some(print) = &mut self.1 {
            print.poll(true);
        }
    }

    fn prints_pending(&self) -> bool {
        self.1.as_ref().is_some_and(OffPathPrint::pending)
    }

    fn window_ms(&self) -> i64 {
        fairuse_vad::WINDOW_MS as i64
    }

    fn speech_ms(&self) -> i64 {
        i64::try_from(self.0.speech_ms()).unwrap_or(i64::MAX)
    }
}

impl VadMeters {
    /// Checks that the embedded model loads, so a bad build fails at start-up, not per stream.
    pub fn new() -> anyhow::Result<VadMeters> {
        fairuse_vad::SileroModel::embedded().map_err(|e| anyhow::anyhow!("the embedded VAD model: {e}"))?;
        Ok(VadMeters)
    }
}

impl MeterFactory for VadMeters {
    fn new_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        // The gateway admits only sample rates 8000-48000 and 1 or 2 channels before it asks for
        // a meter, and `new` checked the model at start-up: those are SpeechMeter::new's only
        // errors, so this cannot fail.
        let meter = SpeechMeter::new(sample_rate, channels).expect("format validated by the gateway");
        Box::new(VadStream(meter, None))
    }

    fn new_fingerprinting_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        // FingerprintStream::new accepts the same rates and channel counts as SpeechMeter::new.
        let meter = SpeechMeter::new(sample_rate, channels).expect("format validated by the gateway");
        let print = FingerprintStream::new(sample_rate, channels).expect("format validated by the gateway");
        Box::new(VadStream(meter, Some(OffPathPrint::new(print, sample_rate, channels))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VAD fixture (6.2 s of speech at 16 kHz mono) three times over.
    fn speech() -> Vec<i16> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fairuse-vad/tests/fixtures/speech_16k.wav");
        let mut wav = fairuse_vad::WavPcm16::open(path).unwrap();
        let (mut once, mut buf) = (Vec::new(), Vec::with_capacity(8192));
        while wav.read_chunk(&mut buf).unwrap() > 0 {
            once.extend_from_slice(&buf);
        }
        once.repeat(3)
    }

    fn run(meter: &mut dyn StreamMeter, pcm: &[i16]) -> (Vec<HashSample>, usize) {
        let (mut hashes, mut windows) = (Vec::new(), 0);
        for frame in pcm.chunks(320) {
            meter.push(frame, &mut |_| windows += 1);
            meter.take_hashes(&mut hashes);
        }
        settle(meter, &mut hashes);
        (hashes, windows)
    }

    /// Hands the meter's last audio to the fingerprint and waits for what it computes.
    fn settle(meter: &mut dyn StreamMeter, hashes: &mut Vec<HashSample>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        meter.flush_prints();
        while meter.prints_pending() {
            assert!(std::time::Instant::now() < deadline, "the fingerprint pool never answered");
            std::thread::sleep(std::time::Duration::from_millis(1));
            meter.flush_prints();
        }
        meter.take_hashes(hashes);
    }

    #[test]
    fn a_fingerprinting_meter_keeps_sampled_speech_codes_and_meters_the_same() {
        let pcm = speech();
        let mut plain = VadMeters.new_meter(16_000, 1);
        let mut printing = VadMeters.new_fingerprinting_meter(16_000, 1);
        let (none, plain_windows) = run(plain.as_mut(), &pcm);
        let (hashes, printing_windows) = run(printing.as_mut(), &pcm);
        assert!(none.is_empty(), "a plain meter fingerprints nothing");
        assert_eq!((plain.speech_ms(), plain_windows), (printing.speech_ms(), printing_windows));
        // 18.5 s: ~150 codes, about half of them speech, one in four of those sampled.
        assert!((5..60).contains(&hashes.len()), "{} sampled codes", hashes.len());
        assert!(hashes.windows(2).all(|w| w[0].offset_ms < w[1].offset_ms), "in stream order");
        assert!(hashes.iter().all(|h| fairuse_fingerprint::is_sampled(h.code)));
    }
}
