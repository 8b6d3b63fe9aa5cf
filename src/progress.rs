//! The live view: a progress bar on a terminal, one compact line per interval otherwise
//! (cron, CI logs), or nothing with `--quiet`. It writes to stderr so that stdout carries
//! only the summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::{Cause, Counter, Gauges, Metric, Recorder, State};
use crate::units::format_duration;

/// Which live view to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing.
    Quiet,
    /// An indicatif bar, redrawn in place.
    Bar,
    /// One line per interval.
    Lines,
}

impl Progress {
    /// A bar on a terminal, lines elsewhere; nothing when `quiet`.
    pub fn detect(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }

    /// Starts the view for a run of `sessions` over `duration`.
    pub fn start(self, sessions: u32, duration: Duration) -> View {
        let bar = (self == Progress::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(duration.as_millis() as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                    .expect("constant template")
                    .progress_chars("=> "),
            );
            bar
        });
        View {
            mode: self,
            bar,
            sessions,
            duration,
            reconnects: 0,
            errors: 0,
            last: Duration::ZERO,
        }
    }
}

/// A running live view. Owned by the aggregator.
pub struct View {
    mode: Progress,
    bar: Option<ProgressBar>,
    /// Most sessions the shape runs at once.
    sessions: u32,
    /// How long the run lasts.
    duration: Duration,
    /// Reconnects so far.
    reconnects: u64,
    /// Errors so far.
    errors: u64,
    /// Run time at the previous update.
    last: Duration,
}

impl View {
    /// Shows one complete interval: `interval` is what happened in it, `gauges` the
    /// sessions per state at its end, `level` the load shape's target (sessions, or
    /// arrivals per second in the open model).
    pub fn update(&mut self, interval: &Recorder, gauges: &Gauges, elapsed: Duration, level: f64) {
        self.reconnects += interval.reconnects_total();
        self.errors += interval.error_counts().iter().map(|(_, n)| n).sum::<u64>();
        let span = elapsed
            .saturating_sub(self.last)
            .max(Duration::from_millis(1));
        self.last = elapsed;
        if self.mode == Progress::Quiet {
            return;
        }
        let line = self.line(interval, gauges, span, level);
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(line);
            }
            None => note!(
                "[{:>6.1}s/{:.0}s] {line}",
                elapsed.as_secs_f64(),
                self.duration.as_secs_f64()
            ),
        }
    }

    fn line(&self, w: &Recorder, gauges: &Gauges, span: Duration, level: f64) -> String {
        let per_s = |c: Counter| w.counter(c) as f64 / span.as_secs_f64();
        let hb = w.histogram(Metric::Heartbeat);
        let p99 = if hb.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}ms", hb.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let g = |s: State| gauges[s.index()];
        let remaining = self.duration.saturating_sub(self.last);
        format!(
            "target {:.0} bound {} (max {}) connecting {} steps {} reconnecting {} away {} | connects {:.0}/s hb {:.0}/s p99 {} | reconnects {} (heartbeat {}) errors {} | {} left",
            level.floor(),
            g(State::Bound),
            self.sessions,
            g(State::Connecting),
            g(State::Steps),
            g(State::Reconnecting),
            g(State::Away),
            per_s(Counter::ConnectsAttempted),
            per_s(Counter::HeartbeatsAcked),
            p99,
            self.reconnects,
            w.reconnects[Cause::Heartbeat.index()],
            self.errors,
            format_duration(remaining),
        )
    }

    /// The duration is over: sessions are closing.
    pub fn stopping(&mut self) {
        match &self.bar {
            Some(bar) => bar.set_message("stopping: closing sessions with 1000"),
            None if self.mode == Progress::Lines => {
                note!("stopping: closing sessions with 1000")
            }
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
