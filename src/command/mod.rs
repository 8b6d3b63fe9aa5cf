//! The five commands, one file each, and what they share.
//!
//! Each command file takes its parsed arguments, validates them and executes; none
//! calls another. What they share sits below them: [`rundir`] names a run's files,
//! `finish` judges, writes and prints a report for `run` and `report` alike, `plan`
//! prepares `run`'s connections, and `limits` owns the open-file limit.

pub(crate) mod check;
pub(crate) mod compare;
mod finish;
mod limits;
mod plan;
pub(crate) mod report;
pub mod run;
pub mod rundir;
pub(crate) mod serve;
