//! The five commands, one file each, and what they share.
//!
//! Each command file takes its parsed arguments, validates them and executes; none
//! calls another. What they share sits below them: `plan` prepares `run`'s connections,
//! and `limits` owns the open-file limit.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::report::Report;

pub(crate) mod check;
pub(crate) mod compare;
mod limits;
mod plan;
pub(crate) mod report;
pub mod run;
pub(crate) mod serve;

/// The report.json a run argument names: a run directory's, or the path itself.
pub(crate) fn report_path(run: &Path) -> PathBuf {
    if run.is_dir() {
        run.join("report.json")
    } else {
        run.to_path_buf()
    }
}

pub(crate) fn load_report(path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a wsoak report", path.display()))
}
