//! The progress bar on standard error: drawn as usual on a terminal, as plain lines in a log.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::args::GenTraceArgs;

/// The bar is drawn on a terminal as usual; when standard error is not a terminal (a CI log) it
/// is shown only for long runs, as a plain line every few seconds (indicatif alone would hide it).
pub(super) fn progress_bar(args: &GenTraceArgs) -> anyhow::Result<ProgressBar> {
    if args.quiet {
        return Ok(ProgressBar::hidden());
    }
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else if args.users >= 10_000 {
        ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1)
    } else {
        return Ok(ProgressBar::hidden());
    };
    let style = ProgressStyle::with_template("gen-trace [{elapsed_precise}] {bar:40} {pos}/{len} users (eta {eta})")
        .context("progress bar template")?
        .progress_chars("=> ");
    Ok(ProgressBar::with_draw_target(Some(args.users), target).with_style(style))
}

/// A [`TermLike`] for logs: no cursor movement, one plain line at most every [`PlainLines::EVERY`].
#[derive(Debug, Default)]
struct PlainLines {
    state: Mutex<(String, Option<Instant>)>,
}

impl PlainLines {
    const EVERY: Duration = Duration::from_secs(5);

    fn with_state<T>(&self, f: impl FnOnce(&mut (String, Option<Instant>)) -> T) -> T {
        // A poisoned lock only means another draw panicked; the text is still usable.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.with_state(|(text, _)| text.push_str(s.trim_matches('\r')));
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.with_state(|(text, _)| text.clear());
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        self.with_state(|(text, last)| {
            let line = text.trim();
            if !line.is_empty() && last.is_none_or(|at| at.elapsed() >= Self::EVERY) {
                eprintln!("{line}");
                *last = Some(Instant::now());
            }
            text.clear();
        });
        Ok(())
    }
}
