//! Speech metering for the streaming gateway: the Silero VAD of `fairuse-vad` behind the
//! server's per-stream meter port. Only the composition root knows both crates.

use fairuse_server::gateway::{MeterFactory, StreamMeter};
use fairuse_vad::SpeechMeter;

/// Makes one VAD meter per stream (each with its own recurrent state).
pub struct VadMeters;

struct VadStream(SpeechMeter);

impl StreamMeter for VadStream {
    fn push(&mut self, pcm: &[i16], on_window: &mut dyn FnMut(bool)) {
        self.0.push_with(pcm, |_, is_speech| on_window(is_speech));
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
        Box::new(VadStream(meter))
    }
}
