//! `wsoak report`: finishes a run again from its files: re-renders the summary (or prints
//! the report's JSON), the HTML and, when asked, the JUnit XML, rebuilding report.json
//! from the interval logs when the run never wrote it.

use std::time::Duration;

use anyhow::{bail, Context as _};

use super::finish::{self, Finish};
use super::rundir::RunDir;
use crate::cli::ReportArgs;
use crate::report::{self, Footprint, IntervalLine, Report};

/// `wsoak report`: re-renders the summary and HTML from a run's files, rebuilding
/// report.json from the interval logs when the run never wrote it.
pub(crate) fn rerender(args: &ReportArgs) -> anyhow::Result<u8> {
    let dir = RunDir::find(&args.run);
    let info_path = dir.info();
    let info: report::RunInfo =
        serde_json::from_str(&std::fs::read_to_string(&info_path).with_context(|| {
            format!(
                "{} is not a wsoak run: no {}",
                args.run.display(),
                info_path.display()
            )
        })?)
        .with_context(|| format!("{} is not a wsoak run.json", info_path.display()))?;
    let (lines, skipped_lines) =
        report::read_intervals_prefix(&dir.intervals()).map_err(anyhow::Error::msg)?;
    let until = lines
        .last()
        .map_or(Duration::ZERO, |l| Duration::from_secs_f64(l.t));
    let (totals, skipped_histograms) =
        report::hlog::read_totals_prefix(&dir.hlog(), until).map_err(anyhow::Error::msg)?;
    for note in skipped_lines.iter().chain(&skipped_histograms) {
        note!("wsoak: damaged log: {note}");
    }
    let path = dir.report();
    if lines.is_empty() && !path.exists() {
        bail!(
            "{}: nothing to rebuild: no complete interval was written (the run failed at \
             start, or was killed within its first interval)",
            args.run.display()
        );
    }
    let thresholds = info.parsed_thresholds().map_err(anyhow::Error::msg)?;
    let report = if path.exists() {
        dir.read_report()?
    } else {
        let meta = report::Meta {
            identity: info.wsoak.clone(),
            scenario: info.scenario.clone(),
            target: info.target.clone(),
            planned: info.planned,
            shards: info.shards,
            workers: info.workers,
            lost_workers: Vec::new(),
            started_at: humantime::parse_rfc3339(&info.started_at).unwrap_or(std::time::UNIX_EPOCH),
            elapsed: until,
            peak_active: report::peak_active(&lines),
            interrupted: true,
            aborted_by: None,
            shard: info.shard.clone(),
        };
        let rebuilt = Report::build(
            &report::rebuild(&lines, &totals, &info.steps),
            &meta,
            None,
            logged_footprint(&lines),
        );
        note!(
            "wsoak: {} was missing: rebuilt from {} intervals",
            path.display(),
            lines.len()
        );
        rebuilt
    };
    let (report, passed) = Finish {
        dir: &dir,
        thresholds: &thresholds,
        totals: &totals,
        shape: &info.shape,
        // The exposition lives only in the run's memory: a metrics.prom it wrote stays.
        exposition: None,
        junit: args.junit.as_deref(),
        format: args.format,
    }
    .complete(report, || Ok(lines))?;
    // As `wsoak run` would: a run with internal errors is not to be trusted, whoever
    // renders its report.
    Ok(finish::exit_code(&report, passed))
}

/// The original run's footprint as far as its intervals recorded it: a lower bound, for
/// nothing was sampled between them.
fn logged_footprint(lines: &[IntervalLine]) -> Footprint {
    Footprint {
        peak_rss_kib: lines.iter().filter_map(|l| l.rss_kib).max(),
        cpu_s: Some(lines.iter().filter_map(|l| l.cpu_ms).sum::<f64>() / 1000.0),
    }
}
