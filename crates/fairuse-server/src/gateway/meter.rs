//! Per-stream speech metering as the gateway sees it: traits only, so the gateway depends on no
//! VAD (the VAD crate provides the real [`MeterFactory`]).

use fairuse_domain::sessions::HashSample;

/// Per-stream speech metering: fed every whole PCM frame (interleaved when stereo), asked for
/// the running total. Implementations keep their own state per stream.
pub trait StreamMeter: Send {
    /// Feeds samples; calls `on_window(is_speech)` for every detection window completed, in
    /// order (the gateway builds the session's speech runs and pauses from them).
    fn push(&mut self, pcm: &[i16], on_window: &mut dyn FnMut(bool));
    fn speech_ms(&self) -> i64;
    /// The length of one detection window (32 ms for Silero).
    fn window_ms(&self) -> i64;
    /// Appends the sampled fingerprint codes of this stream's speech completed since the last
    /// call (policy `[fingerprint]`). A meter that does not fingerprint appends nothing.
    fn take_hashes(&mut self, _out: &mut Vec<HashSample>) {}
    /// Hands the fingerprint whatever audio the meter still holds back for a fuller batch (the
    /// stream is ending); its codes come through [`take_hashes`](Self::take_hashes) once
    /// [`prints_pending`](Self::prints_pending) is false.
    fn flush_prints(&mut self) {}
    /// Whether audio handed to the fingerprint has not come back as codes yet (a meter may
    /// fingerprint off the frame path).
    fn prints_pending(&self) -> bool {
        false
    }
}

/// Makes one [`StreamMeter`] per stream.
pub trait MeterFactory: Send + Sync {
    fn new_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter>;
    /// A meter that also fingerprints the stream's speech, used while the policy's
    /// `[fingerprint] enabled` is on; a factory that cannot fingerprint returns a plain meter.
    fn new_fingerprinting_meter(&self, sample_rate: u32, channels: u16) -> Box<dyn StreamMeter> {
        self.new_meter(sample_rate, channels)
    }
}
