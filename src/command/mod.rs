//! The commands, one file each (and the hidden `worker` of `run --workers`), and
//! what they share. `serve` keeps its processes for `--workers` (starting them, being
//! one, what they say) in `serve/`.
//!
//! Each command file takes its parsed arguments, validates them and executes; none
//! calls another. What they share sits below them: [`rundir`] names a run's files,
//! `finish` judges, writes and prints a report for `run` and `report` alike, `plan`
//! prepares `run`'s connections, and `limits` owns the open-file limit. The exit codes
//! are here too, so that no command reaches up into the crate's face for them.

pub(crate) mod check;
pub(crate) mod compare;
mod finish;
pub(crate) mod limits;
pub(crate) mod merge;
pub(crate) mod package;
mod plan;
pub(crate) mod report;
pub mod run;
pub mod rundir;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod worker;

/// Exit code: the run completed.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run completed but a threshold failed (the report is written).
pub const EXIT_THRESHOLDS: u8 = 1;
/// Exit code: a usage or scenario error, or a target that cannot work.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: wsoak itself failed during the run (a caught panic, `errors.internal`). The
/// report is written, but its numbers are not to be trusted, whatever the thresholds say.
pub const EXIT_INTERNAL: u8 = 3;
