//! The one way a report is finished, for `wsoak run` and `wsoak report` alike: judge the
//! thresholds, write report.json, render report.html (and metrics.prom when the run
//! served one, and the JUnit XML when asked for), print the summary (or the report's
//! JSON) and the internal-error line, and earn an exit code.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::rundir::RunDir;
use super::{EXIT_INTERNAL, EXIT_OK, EXIT_THRESHOLDS};
use crate::cli::Format;
use crate::report::threshold::Threshold;
use crate::report::{self, IntervalLine, Report};

/// What finishing a run needs besides its report.
pub(crate) struct Finish<'a> {
    /// Where the files go.
    pub dir: &'a RunDir,
    /// The checks to judge the report by.
    pub thresholds: &'a [Threshold],
    /// Each metric's whole-run histogram, for the HTML report.
    pub totals: &'a BTreeMap<String, Histogram<u64>>,
    /// The load shape, as described in run.json.
    pub shape: &'a str,
    /// The final Prometheus exposition, when the run served one.
    pub exposition: Option<&'a str>,
    /// Where to write the verdicts as JUnit XML (`--junit`), if anywhere.
    pub junit: Option<&'a Path>,
    /// What stdout gets: the summary, or the report's JSON (`wsoak report --format json`).
    pub format: Format,
}

impl Finish<'_> {
    /// Judges, writes and prints `report`; returns it judged, and whether every
    /// threshold passed. `intervals` is read only once report.json is written, so a log
    /// that cannot be read never costs the report.
    pub fn complete(
        &self,
        mut report: Report,
        intervals: impl FnOnce() -> anyhow::Result<Vec<IntervalLine>>,
    ) -> anyhow::Result<(Report, bool)> {
        let passed = report.judge(self.thresholds);
        let path = self.dir.report();
        report
            .write(path)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        let lines = intervals()?;
        let html_path = self.dir.html();
        std::fs::write(
            &html_path,
            report::html::render(&report, &lines, self.totals, self.shape),
        )
        .with_context(|| format!("cannot write {}", html_path.display()))?;
        if let Some(exposition) = self.exposition {
            let prom_path = self.dir.metrics();
            std::fs::write(&prom_path, exposition)
                .with_context(|| format!("cannot write {}", prom_path.display()))?;
        }
        if let Some(junit) = self.junit {
            report::write_atomic(junit, &report::junit::run(&report))
                .with_context(|| format!("cannot write the JUnit XML to {}", junit.display()))?;
        }
        match self.format {
            Format::Text => say_raw!("{}", report.summary()),
            // The same text as report.json, so that a program may read either.
            Format::Json => say_raw!("{}", report.to_json_text()),
        }
        if !report.internal_errors.is_empty() {
            note!(
                "wsoak: error: {} internal errors (wsoak itself failed; this run's numbers are \
                 not to be trusted, exit code 3). First: {}",
                report.errors.get("internal").copied().unwrap_or(0),
                report.internal_errors[0]
            );
        }
        // Where the files are: for people, so on stderr when stdout is for a program.
        let mut files = vec![("report", path.to_path_buf()), ("html", html_path)];
        files.extend(self.junit.map(|j| ("junit", j.to_path_buf())));
        for (what, path) in files {
            match self.format {
                Format::Text => say!("{what:<11} {}", path.display()),
                Format::Json => note!("{what:<11} {}", path.display()),
            }
        }
        Ok((report, passed))
    }
}

/// The exit code a finished run earns: an internal error outranks the thresholds.
pub(crate) fn exit_code(report: &Report, passed: bool) -> u8 {
    if !report.internal_errors.is_empty() {
        EXIT_INTERNAL
    } else if passed {
        EXIT_OK
    } else {
        EXIT_THRESHOLDS
    }
}
