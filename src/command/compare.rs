//! `wsoak compare`: per-metric deltas between two runs' reports; a regression beyond
//! tolerance exits 1.

use anyhow::bail;

use super::{load_report, report_path};
use crate::cli::CompareArgs;
use crate::report;
use crate::{EXIT_OK, EXIT_THRESHOLDS};

/// `wsoak compare`: exit 1 on a regression beyond tolerance.
pub(crate) fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let (base_path, cur_path) = (report_path(&args.baseline), report_path(&args.current));
    let (baseline, current) = (load_report(&base_path)?, load_report(&cur_path)?);
    let options = report::compare::Options {
        tolerance: args.tolerance,
        per_metric: args.tolerance_for.iter().cloned().collect(),
        latency_floor_ms: args.latency_floor.as_secs_f64() * 1000.0,
    };
    let rows = report::compare::compare(&baseline, &current, &options);
    let known: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
    for (metric, _) in &args.tolerance_for {
        if !known.contains(&metric.as_str()) {
            bail!(
                "--tolerance-for {metric}: no such metric in these runs (they have: {})",
                known.join(", ")
            );
        }
    }
    say_raw!(
        "{}",
        report::compare::render(
            &base_path.display().to_string(),
            &cur_path.display().to_string(),
            &rows
        )
    );
    Ok(if rows.iter().any(|r| r.regression) {
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}
