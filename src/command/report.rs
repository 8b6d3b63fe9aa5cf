//! `wsoak report`: finishes a run again from its files: re-renders the summary and the
//! HTML, rebuilding report.json from the interval logs when the run never wrote it.

use anyhow::{bail, Context as _};

use super::rundir::RunDir;
use crate::cli::ReportArgs;
use crate::report::{self, Report};
use crate::{EXIT_OK, EXIT_THRESHOLDS};

/// `wsoak report`: re-renders the summary and HTML from a run's files, rebuilding
/// report.json from the interval logs when the run never wrote it.
pub(crate) fn rerender(args: &ReportArgs) -> anyhow::Result<u8> {
    let dir = RunDir::find(&args.run);
    let path = dir.report();
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
    let until = lines.last().map_or(std::time::Duration::ZERO, |l| {
        std::time::Duration::from_secs_f64(l.t)
    });
    let (totals, skipped_histograms) =
        report::hlog::read_totals_prefix(&dir.hlog(), until).map_err(anyhow::Error::msg)?;
    for note in skipped_lines.iter().chain(&skipped_histograms) {
        note!("wsoak: damaged log: {note}");
    }
    if lines.is_empty() && !path.exists() {
        bail!(
            "{}: nothing to rebuild: no complete interval was written (the run failed at \
             start, or was killed within its first interval)",
            args.run.display()
        );
    }
    let thresholds = info
        .thresholds
        .iter()
        .map(|t| report::threshold::Threshold::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let mut report = if path.exists() {
        dir.read_report()?
    } else {
        let meta = report::Meta {
            scenario: info.scenario.clone(),
            target: info.target.clone(),
            planned: info.planned,
            shards: info.shards,
            started_at: humantime::parse_rfc3339(&info.started_at).unwrap_or(std::time::UNIX_EPOCH),
            elapsed: until,
            peak_active: report::peak_active(&lines),
            interrupted: true,
            aborted_by: None,
        };
        let mut rebuilt = Report::build(&report::rebuild(&lines, &totals), &meta, None);
        // The footprint is the original run's, which nothing recorded: say so.
        rebuilt.tester.peak_rss_kib = lines.iter().filter_map(|l| l.rss_kib).max();
        rebuilt.tester.cpu_s = Some(lines.iter().filter_map(|l| l.cpu_ms).sum::<f64>() / 1000.0);
        note!(
            "wsoak: {} was missing: rebuilt from {} intervals",
            path.display(),
            lines.len()
        );
        rebuilt
    };
    let passed = report.judge(&thresholds);
    report
        .write(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let html_path = dir.html();
    std::fs::write(
        &html_path,
        report::html::render(&report, &lines, &totals, &info.shape),
    )
    .with_context(|| format!("cannot write {}", html_path.display()))?;
    say_raw!("{}", report.summary());
    if !report.internal_errors.is_empty() {
        note!(
            "wsoak: error: {} internal errors (wsoak itself failed; this run's numbers are not \
             to be trusted, exit code 3). First: {}",
            report.errors.get("internal").copied().unwrap_or(0),
            report.internal_errors[0]
        );
    }
    say!("report      {}", path.display());
    say!("html        {}", html_path.display());
    Ok(if passed { EXIT_OK } else { EXIT_THRESHOLDS })
}
