//! Running the `fairuse` binary: `fairuse serve` as a child process on port 0, and one-shot
//! commands. Shared by the integration tests (through `common`, with the binary cargo built for
//! them) and by `examples/gateway_load.rs` (with a release binary), so it uses std only and takes
//! the binary's path.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The line `fairuse serve` prints on stdout once its listener is bound.
const LISTENING: &str = "fairuse listening on ";

/// How long a start may take before the harness gives up (bounds a broken build, not a timing
/// assertion: the release binary starts in well under a second).
const START_LIMIT: Duration = Duration::from_secs(60);

/// `bin` with none of the caller's `FAIRUSE*`/`FAIR_USE*` variables: the binary reads its whole
/// configuration from the environment, so a developer's shell must not leak into a test.
pub fn command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("FAIRUSE") || k.starts_with("FAIR_USE") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `bin args` with `env` (on a clean environment, see [`command`]) to its end, at most
/// `START_LIMIT`; fails the test if it does not exit by then.
pub fn run(bin: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut child = command(bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    // Read both pipes while waiting: a child that fills one would otherwise never exit.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + START_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("fairuse {args:?} did not exit within {} s", START_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut p) = pipe {
            p.read_to_end(&mut out).ok();
        }
        out
    })
}

/// What the child printed on stdout, and when it last printed.
#[derive(Default)]
struct Printed {
    lines: Vec<String>,
    last: Option<Instant>,
}

/// A running `fairuse serve`. Killed (SIGKILL) on drop. Its stderr (the logs) is copied, line by
/// line, to this test's stderr, which the test harness shows only when the test fails.
pub struct ServeProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`, from the listening line.
    pub base: String,
    stdout: Arc<Mutex<Printed>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `bin serve --listen 127.0.0.1:0 --data-dir <data_dir>` with only `env` and waits
    /// until it listens. Fails the test, with what the process logged, when it exits first.
    pub fn start(bin: &Path, data_dir: &Path, env: &[(String, String)]) -> ServeProcess {
        let mut cmd = command(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id();

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let kept = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("fairuse[{pid}]: {line}");
                kept.lock().unwrap().push(line);
            }
        });

        let stdout = Arc::new(Mutex::new(Printed::default()));
        let pipe = child.stdout.take().expect("stdout is piped");
        let printed = stdout.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Kept before the listening line is announced: `printed` right after the start
                // must see it (announcing first let a reader find no line at all and return).
                let url = line.strip_prefix(LISTENING).map(|u| u.trim().to_owned());
                {
                    let mut p = printed.lock().unwrap();
                    p.lines.push(line);
                    p.last = Some(Instant::now());
                }
                if let Some(url) = url {
                    tx.send(url).ok();
                }
            }
        });

        let mut process = ServeProcess {
            child: Some(child),
            base: String::new(),
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        match rx.recv_timeout(START_LIMIT) {
            Ok(base) => process.base = base,
            Err(e) => {
                let why = match e {
                    RecvTimeoutError::Timeout => format!("did not listen within {} s", START_LIMIT.as_secs()),
                    RecvTimeoutError::Disconnected => "exited before listening".to_owned(),
                };
                let status = process.kill();
                panic!("fairuse serve {why} (exit status {status:?}); it logged:\n{}", process.stderr());
            }
        }
        process
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every line printed on stdout so far, once nothing new has come for `quiet` (the start-up
    /// block after the listening line is printed at once, so a short pause ends it).
    pub fn printed(&self, quiet: Duration) -> Vec<String> {
        loop {
            let p = self.stdout.lock().unwrap();
            let waited = p.last.map_or(quiet, |t| t.elapsed());
            if waited >= quiet {
                return p.lines.clone();
            }
            drop(p);
            std::thread::sleep(quiet - waited);
        }
    }

    /// What the process logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGKILL (no chance to flush anything) and wait for the process to go.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        c.kill().ok();
        let status = c.wait().ok();
        self.finish_stderr();
        status
    }

    /// SIGTERM and wait up to 30 s for a clean exit; returns the exit status, or None while it
    /// is still running.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().ok();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                self.finish_stderr();
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits for the last log lines of a process that has exited, so a failing test shows them.
    fn finish_stderr(&mut self) {
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().ok();
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
