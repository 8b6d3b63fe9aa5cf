//! A run's directory: where each of its files lives.
//!
//! Every command asks a [`RunDir`] for a path instead of building one. The names are
//! [`report::sibling`]'s: `report.json` keeps its files beside it under their plain names
//! (`run.json`, `intervals.jsonl`, …), and a report with another name, such as
//! `--report x/foo.json`, prefixes them with its stem (`x/foo.intervals.jsonl`), so two
//! reports written to one directory keep their files apart. Knows nothing of what the
//! files hold, except how to read and write the two small JSON ones.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use crate::report::{self, Report, RunInfo};

/// The files of one run, named from its report path.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The report's path: `report.json` in the run's directory, or the exact `--report`
    /// path. Every other file is named from it.
    report: PathBuf,
}

impl RunDir {
    /// A new run's files: at the exact `--report` path when one was given, else in
    /// `reports/<scenario>-<UTC timestamp>/`.
    pub fn new(report: Option<PathBuf>, scenario: &str, at: SystemTime) -> RunDir {
        RunDir {
            report: report.unwrap_or_else(|| report::default_path(scenario, at)),
        }
    }

    /// The run a command-line argument names: a run directory, or a report file itself.
    pub fn find(run: &Path) -> RunDir {
        let report = if run.is_dir() {
            run.join("report.json")
        } else {
            run.to_path_buf()
        };
        RunDir { report }
    }

    /// Creates the directory the files go in.
    pub fn create(&self) -> anyhow::Result<()> {
        if let Some(dir) = self.report.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
        }
        Ok(())
    }

    /// The JSON report.
    pub fn report(&self) -> &Path {
        &self.report
    }

    /// What the run was asked to do, written before it starts.
    pub fn info(&self) -> PathBuf {
        report::sibling(&self.report, "run.json")
    }

    /// One JSON line per interval.
    pub fn intervals(&self) -> PathBuf {
        report::intervals_path(&self.report)
    }

    /// Every interval's histograms (HdrHistogram interval log).
    pub fn hlog(&self) -> PathBuf {
        report::sibling(&self.report, "latency.hlog")
    }

    /// The HTML report.
    pub fn html(&self) -> PathBuf {
        report::sibling(&self.report, "report.html")
    }

    /// The last Prometheus exposition, when the run served one.
    pub fn metrics(&self) -> PathBuf {
        report::sibling(&self.report, "metrics.prom")
    }

    /// The run's name: the name of the directory that holds its report
    /// (`mini-20261129T150000Z` for `reports/mini-20261129T150000Z/report.json`), or of
    /// the working directory when the report path has no directory to name (`report.json`,
    /// `./report.json`). Call it once the directory exists.
    pub fn name(&self) -> String {
        let dir = self.report.parent().unwrap_or(Path::new(""));
        let named = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        named
            .or_else(|| {
                // `.`, `..` or nothing: the directory those stand for, resolved.
                let here = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let full = std::fs::canonicalize(here).ok()?;
                Some(full.file_name()?.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "run".to_string())
    }

    /// Reads the JSON report.
    pub fn read_report(&self) -> anyhow::Result<Report> {
        let path = &self.report;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a wsoak report", path.display()))
    }

    /// Writes what the run was asked to do.
    pub fn write_info(&self, info: &RunInfo) -> anyhow::Result<()> {
        let path = self.info();
        std::fs::write(&path, serde_json::to_string_pretty(info)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_json_keeps_plain_names_beside_it() {
        let dir = RunDir::new(Some("x/report.json".into()), "s", SystemTime::UNIX_EPOCH);
        assert_eq!(dir.report(), Path::new("x/report.json"));
        assert_eq!(dir.info(), Path::new("x/run.json"));
        assert_eq!(dir.intervals(), Path::new("x/intervals.jsonl"));
        assert_eq!(dir.hlog(), Path::new("x/latency.hlog"));
        assert_eq!(dir.html(), Path::new("x/report.html"));
        assert_eq!(dir.metrics(), Path::new("x/metrics.prom"));
    }

    #[test]
    fn another_report_name_prefixes_its_files_with_its_stem() {
        let dir = RunDir::new(Some("x/foo.json".into()), "s", SystemTime::UNIX_EPOCH);
        assert_eq!(dir.info(), Path::new("x/foo.run.json"));
        assert_eq!(dir.intervals(), Path::new("x/foo.intervals.jsonl"));
        assert_eq!(dir.hlog(), Path::new("x/foo.latency.hlog"));
        assert_eq!(dir.html(), Path::new("x/foo.report.html"));
        assert_eq!(dir.metrics(), Path::new("x/foo.metrics.prom"));
    }

    #[test]
    fn without_a_report_path_a_run_gets_a_stamped_directory() {
        let dir = RunDir::new(None, "mini", SystemTime::UNIX_EPOCH);
        assert_eq!(
            dir.report(),
            Path::new("reports/mini-19700101T000000Z/report.json")
        );
        assert_eq!(
            dir.intervals(),
            Path::new("reports/mini-19700101T000000Z/intervals.jsonl")
        );
    }

    #[test]
    fn a_run_is_named_by_the_directory_holding_its_report() {
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(
            RunDir::new(None, "mini", at).name(),
            "mini-19700101T000000Z"
        );
        let named = |report: &str| RunDir::new(Some(report.into()), "s", at).name();
        assert_eq!(named("x/report.json"), "x");
        assert_eq!(named("/tmp/soak/foo.json"), "soak");
        let here = std::env::current_dir().unwrap();
        let here = here.file_name().unwrap().to_str().unwrap();
        assert_eq!(named("report.json"), here);
        assert_eq!(named("./report.json"), here);
        // The root has no name to give.
        assert_eq!(named("/report.json"), "run");
    }

    #[test]
    fn a_run_named_by_a_file_is_that_report() {
        let dir = RunDir::find(Path::new("no/such/dir/foo.json"));
        assert_eq!(dir.report(), Path::new("no/such/dir/foo.json"));
    }
}
