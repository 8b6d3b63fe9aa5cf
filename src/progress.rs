//! The live view: a progress bar on a terminal, one compact line per interval otherwise
//! (cron, CI logs), or nothing with `--quiet`. It writes to stderr so that stdout carries
//! only the summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::{Cause, Counter, Gauges, Metric, Recorder, State};
use crate::units::format_duration;

/// Columns the bar's own parts take before the message: spinner, elapsed, bar, spaces.
const BAR_COLUMNS: usize = 2 + 9 + 17;

/// As many of `parts` as fit in `width` columns, in order, two spaces apart: a part that
/// does not fit is left out, and so is every part after it.
fn fit(parts: &[String], width: usize) -> String {
    let mut line = String::new();
    for part in parts {
        let needed = if line.is_empty() {
            part.chars().count()
        } else {
            part.chars().count() + 2
        };
        if line.chars().count() + needed > width {
            break;
        }
        if !line.is_empty() {
            line.push_str("  ");
        }
        line.push_str(part);
    }
    line
}

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
                ProgressStyle::with_template("{spinner} {elapsed_precise} {bar:16} {msg}")
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
        let parts = self.parts(w, gauges, span, level);
        match self.mode {
            // On a terminal the line must fit beside the bar: the most telling parts
            // first, the rest dropped, never wrapped onto more lines.
            Progress::Bar => {
                let columns = console::Term::stderr().size().1 as usize;
                fit(&parts, columns.saturating_sub(BAR_COLUMNS))
            }
            // A log keeps every part, one line per interval.
            _ => parts.join("  "),
        }
    }

    /// The line's parts, most telling first.
    fn parts(&self, w: &Recorder, gauges: &Gauges, span: Duration, level: f64) -> Vec<String> {
        let per_s = |c: Counter| w.counter(c) as f64 / span.as_secs_f64();
        let hb = w.histogram(Metric::Heartbeat);
        let p99 = if hb.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}ms", hb.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let g = |s: State| gauges[s.index()];
        let remaining = self.duration.saturating_sub(self.last);
        vec![
            format!("bound {}/{:.0}", g(State::Bound), level.floor()),
            format!("hb {:.0}/s p99 {p99}", per_s(Counter::HeartbeatsAcked)),
            format!("errors {}", self.errors),
            format!(
                "reconnects {} (heartbeat {})",
                self.reconnects,
                w.reconnects[Cause::Heartbeat.index()]
            ),
            format!("{} left", format_duration(remaining)),
            format!(
                "connecting {} steps {} reconnecting {}",
                g(State::Connecting),
                g(State::Steps),
                g(State::Reconnecting)
            ),
            format!("connects {:.0}/s", per_s(Counter::ConnectsAttempted)),
            format!("away {}", g(State::Away)),
            format!("max {}", self.sessions),
        ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_line_fits_the_width_and_keeps_what_matters_most() {
        let parts: Vec<String> = [
            "bound 2000/2000",
            "hb 2000/s p99 1.1ms",
            "errors 0",
            "29s left",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let all = fit(&parts, 200);
        assert_eq!(
            all,
            "bound 2000/2000  hb 2000/s p99 1.1ms  errors 0  29s left"
        );
        // At 100 columns less the bar, at 60, at 40 and at 10: never longer than the room,
        // the first parts kept.
        for width in [72, 60, 40, 20, 10] {
            let line = fit(&parts, width);
            assert!(line.chars().count() <= width, "{width}: {line}");
            assert!(all.starts_with(&line), "{width}: {line}");
        }
        assert_eq!(fit(&parts, 40), "bound 2000/2000  hb 2000/s p99 1.1ms");
        assert_eq!(fit(&parts, 10), "");
    }

    #[test]
    fn a_full_line_fits_a_100_column_terminal() {
        let mut view = Progress::Lines.start(15_000, Duration::from_secs(1800));
        view.last = Duration::from_secs(100);
        let parts = view.parts(
            &Recorder::new(),
            &[15_000; State::COUNT],
            Duration::from_secs(1),
            15_000.0,
        );
        let line = fit(&parts, 100 - BAR_COLUMNS);
        assert!(line.chars().count() <= 100 - BAR_COLUMNS, "{line}");
        // The most telling parts make it.
        assert!(
            line.starts_with("bound 15000/15000  hb 0/s p99 -  errors 0"),
            "{line}"
        );
    }
}
