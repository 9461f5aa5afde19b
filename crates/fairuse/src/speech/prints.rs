//! Fingerprinting off the frame path. rusty-chromaprint gathers 32,768 samples before it
//! resamples and transforms them, so the frame that completes a batch used to wait for the whole
//! batch on the stream's task: +24-98 ms at p99 on the audio forwarded to the STT vendor
//! (bench/results/gateway-fingerprint.md, before this module). Here a stream only copies its
//! samples and the VAD's verdicts aside; a small pool of threads runs the fingerprint.
//!
//! Each stream has at most one job at a time: the job carries the stream's [`FingerprintStream`]
//! there and back, so a stream's audio is fingerprinted in order without a lock, and the queue
//! never holds more jobs than there are streams. What a stream gathers while its job runs goes in
//! the next one. A stream whose backlog outgrows [`MAX_BACKLOG_MS`] (the pool is far behind, or
//! its job panicked) stops fingerprinting, logged and counted; metering never depends on it.
//! The threads run at a lower priority than the rest of the process ([`NICE`]): when the cores
//! are full, metering and forwarding go first and the fingerprint falls behind.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use fairuse_domain::sessions::HashSample;
use fairuse_fingerprint::FingerprintStream;

/// Audio gathered before it is handed to the pool: long enough that a job's hand-off is cheap
/// next to its work, short against the ~2.7 s a code waits for its audio anyway.
const BATCH_MS: u64 = 500;
/// A stream holding more audio than this, unfingerprinted, gives fingerprinting up: about 2 MB
/// at 16 kHz mono, 11.5 MB at 48 kHz stereo. A real-time stream gathers this only when the pool
/// is a minute behind; a client sending a recording faster than real time gets this much ahead of
/// the job running for it before its fingerprint is dropped.
pub(crate) const MAX_BACKLOG_MS: u64 = 60_000;

struct Job {
    print: Box<FingerprintStream>,
    pcm: Vec<i16>,
    windows: Vec<bool>,
    done: SyncSender<Done>,
}

struct Done {
    print: Box<FingerprintStream>,
    codes: Vec<HashSample>,
    /// The job's buffers, emptied, for the stream's next batch.
    pcm: Vec<i16>,
    windows: Vec<bool>,
}

/// The nice value of the fingerprint threads (the process's own is usually 0): the scheduler
/// gives them the cores the stream tasks leave.
const NICE: i32 = 10;

/// The threads that run the jobs, one per core, started with the first fingerprinting stream.
struct Pool {
    jobs: Sender<Job>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("fairuse-prints-{i}")).spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a fingerprint thread");
            }
        }
        Pool { jobs }
    })
}

/// Lowers the calling thread's priority to [`NICE`]. On Linux a thread's nice value is its own
/// (setpriority on a thread id), so the rest of the process keeps its priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::warn!(error = %e, "could not lower the fingerprint thread's priority");
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only to take one job; a poisoned lock still holds a good receiver.
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // the pool is gone (the process is ending)
        };
        let Job { mut print, mut pcm, mut windows, done } = job;
        // A panic inside the fingerprint loses this stream's job (it gives up when its backlog
        // outgrows the limit), not the thread.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            print.push(&pcm);
            for &w in &windows {
                print.mark_window(w);
            }
            let mut codes = Vec::new();
            print.take_speech_codes(|offset_ms, code| {
                if fairuse_fingerprint::is_sampled(code) {
                    codes.push(HashSample { offset_ms: i64::try_from(offset_ms).unwrap_or(i64::MAX), code });
                }
            });
            codes
        }));
        match ran {
            Ok(codes) => {
                pcm.clear();
                windows.clear();
                // The stream may have ended meanwhile; then nobody waits for this.
                let _ = done.send(Done { print, codes, pcm, windows });
            }
            Err(_) => tracing::error!("fingerprint job panicked; that stream stops fingerprinting"),
        }
    }
}

enum State {
    /// No job running: the stream holds its fingerprint state.
    Idle(Box<FingerprintStream>),
    /// A job is running; its result comes back on the stream's `done_rx`.
    Busy,
    /// Given up (or the pool could not take a job): nothing more is fingerprinted.
    Off,
}

/// One stream's fingerprint, computed off its task.
pub(crate) struct OffPathPrint {
    state: State,
    /// Where finished jobs answer (one channel per stream, used by each of its jobs in turn).
    done_tx: SyncSender<Done>,
    done_rx: Receiver<Done>,
    pcm: Vec<i16>,
    windows: Vec<bool>,
    ready: Vec<HashSample>,
    batch_samples: usize,
    max_backlog_samples: usize,
}

impl OffPathPrint {
    pub(crate) fn new(print: FingerprintStream, sample_rate: u32, channels: u16) -> Self {
        let per_ms = u64::from(sample_rate) * u64::from(channels) / 1000;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        Self {
            state: State::Idle(Box::new(print)),
            done_tx,
            done_rx,
            pcm: Vec::new(),
            windows: Vec::new(),
            ready: Vec::new(),
            batch_samples: usize::try_from(per_ms * BATCH_MS).unwrap_or(usize::MAX),
            max_backlog_samples: usize::try_from(per_ms * MAX_BACKLOG_MS).unwrap_or(usize::MAX),
        }
    }

    /// Sets interleaved samples aside for the fingerprint.
    pub(crate) fn push(&mut self, pcm: &[i16]) {
        if !matches!(self.state, State::Off) {
            self.pcm.extend_from_slice(pcm);
        }
    }

    /// Sets the VAD's verdict on the next window aside.
    pub(crate) fn mark_window(&mut self, is_speech: bool) {
        if !matches!(self.state, State::Off) {
            self.windows.push(is_speech);
        }
    }

    /// Collects a finished job and starts the next one once a batch is gathered (any amount
    /// when `flush`); gives up if the backlog is past the limit.
    pub(crate) fn poll(&mut self, flush: bool) {
        if matches!(self.state, State::Busy) {
            match self.done_rx.try_recv() {
                Ok(done) => {
                    self.state = State::Idle(done.print);
                    self.ready.extend(done.codes);
                    // Reuse the job's buffers when this stream's are still empty.
                    if self.pcm.is_empty() {
                        self.pcm = done.pcm;
                    }
                    if self.windows.is_empty() {
                        self.windows = done.windows;
                    }
                }
                // Still running (the stream holds a sender, so the channel never disconnects).
                Err(_) => {
                    if self.pcm.len() > self.max_backlog_samples {
                        self.give_up("the fingerprint pool is too far behind");
                    }
                    return;
                }
            }
        }
        let due = self.pcm.len() >= self.batch_samples || (flush && !(self.pcm.is_empty() && self.windows.is_empty()));
        if !due {
            return;
        }
        let State::Idle(print) = std::mem::replace(&mut self.state, State::Off) else { return };
        let job = Job {
            print,
            pcm: std::mem::take(&mut self.pcm),
            windows: std::mem::take(&mut self.windows),
            done: self.done_tx.clone(),
        };
        match pool().jobs.send(job) {
            Ok(()) => self.state = State::Busy,
            Err(_) => self.give_up("the fingerprint pool is not running"),
        }
    }

    /// Whether audio handed to the pool has not come back yet.
    pub(crate) fn pending(&self) -> bool {
        matches!(self.state, State::Busy)
    }

    /// Appends the sampled speech codes that came back since the last call.
    pub(crate) fn take(&mut self, out: &mut Vec<HashSample>) {
        out.append(&mut self.ready);
    }

    fn give_up(&mut self, why: &str) {
        metrics::counter!("fairuse_gateway_prints_abandoned_total").increment(1);
        tracing::warn!(backlog_samples = self.pcm.len(), "{why}; this stream stops fingerprinting");
        self.state = State::Off;
        self.pcm = Vec::new();
        self.windows = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(len: usize) -> Vec<i16> {
        // A chirp with a bit of noise: enough structure for chromaprint to emit varied codes.
        let mut x: u32 = 7;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let t = i as f64 / 16_000.0;
                let chirp = (2.0 * std::f64::consts::PI * (300.0 + 400.0 * (t * 0.7).sin()) * t).sin();
                (chirp * 9_000.0) as i16 + ((x >> 20) as i16 - 2_048)
            })
            .collect()
    }

    #[test]
    fn off_the_frame_path_the_codes_are_those_of_the_stream_fed_in_place() {
        let pcm = tone(16_000 * 40);
        // The same frames and the same VAD verdicts (all speech) both ways.
        let mut in_place = FingerprintStream::new(16_000, 1).unwrap();
        let mut expected = Vec::new();
        let mut off = OffPathPrint::new(FingerprintStream::new(16_000, 1).unwrap(), 16_000, 1);
        let mut got = Vec::new();
        for frame in pcm.chunks(512) {
            in_place.push(frame);
            in_place.mark_window(true);
            in_place.take_speech_codes(|offset_ms, code| {
                if fairuse_fingerprint::is_sampled(code) {
                    expected.push(HashSample { offset_ms: offset_ms as i64, code });
                }
            });
            off.push(frame);
            off.mark_window(true);
            off.poll(false);
            off.take(&mut got);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        off.poll(true);
        while off.pending() {
            assert!(std::time::Instant::now() < deadline, "the pool never answered");
            std::thread::sleep(std::time::Duration::from_millis(1));
            off.poll(true);
        }
        off.take(&mut got);
        assert!(expected.len() > 50, "{} codes", expected.len());
        assert_eq!(got, expected);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_fingerprint_threads_run_at_a_lower_priority() {
        pool();
        // /proc/self/task/<tid>/stat: "tid (comm) state ..."; the nice value is field 19.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut nice = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                let Some((comm, rest)) = stat.split_once(") ") else { continue };
                if comm.ends_with("(fairuse-prints") || comm.contains("(fairuse-prints-") {
                    nice.push(rest.split(' ').nth(16).unwrap().parse::<i32>().unwrap());
                }
            }
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            if nice.len() == threads && nice.iter().all(|&n| n == NICE) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "fingerprint threads' nice values: {nice:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_stream_whose_job_does_not_come_back_gives_up_past_the_backlog_and_stops_gathering() {
        let mut off = OffPathPrint::new(FingerprintStream::new(16_000, 1).unwrap(), 16_000, 1);
        // As if a job were running that never answers (a panic inside the fingerprint).
        off.state = State::Busy;
        let second = vec![0i16; 16_000];
        for _ in 0..MAX_BACKLOG_MS / 1000 {
            off.push(&second);
            off.poll(false);
        }
        assert!(off.pending(), "at the limit, still waiting");
        off.push(&second);
        off.poll(false);
        assert!(!off.pending(), "past the limit it gives up");
        off.push(&second);
        off.mark_window(true);
        assert!(off.pcm.is_empty() && off.windows.is_empty(), "and holds nothing more");
        let mut out = Vec::new();
        off.take(&mut out);
        assert!(out.is_empty());
    }
}
