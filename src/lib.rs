//! wsoak: a WebSocket load and soak tester for mini-program style heartbeat clients.
//!
//! Layout, in the order data flows:
//! - [`cli`]: clap types; parsing only.
//! - [`scenario`]: YAML → a validated, immutable [`scenario::Scenario`].
//! - [`runner`]: shards (threads with current-thread runtimes), spawning, deadline, stop.
//! - [`session`]: one simulated page: connect → auth → bindCard → heartbeats → reconnect.
//! - [`heartbeat`]: the heartbeat timetable and which heartbeat an ack belongs to (pure).
//! - [`source`]: which local address each session connects from, and the socket-level
//!   bind behind it.
//! - [`metrics`]: per-shard [`metrics::Recorder`]s, merged from [`metrics::Snapshot`]s.
//! - [`threshold`] and [`faults`]: vocabulary the scenario shares with the report and the
//!   server (threshold expressions, the reference server's fault settings), below all
//!   three so that the input layer never imports the output layer.
//! - [`report`]: the JSON report and the text summary.
//! - [`server`]: the reference server, embedded by default and as `wsoak serve`.
//! - [`command`]: one file per command (`run`, `check`, `serve`, `report`, `compare`,
//!   `schema`),
//!   each parsing nothing and validating then executing; [`command::rundir`] names a
//!   run's files for all of them.
//! - [`out`]: printing for people, where a closed pipe is never an error.
//! - [`wire`]: the frames a worker process sends its parent over stdout (framing and
//!   encoding only).
//!
//! [`run`] is the whole program behind `main`: integration tests call it with
//! `Cli::parse_from([...])` exactly as the binary does.

#[macro_use]
pub mod out;

pub mod cli;
pub mod command;
pub mod faults;
pub mod heartbeat;
pub mod load;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod script;
pub mod server;
pub mod session;
pub mod source;
pub mod threshold;
pub mod tls;
pub mod units;
pub mod wire;

// The exit codes live beside the commands that earn them, so that no command imports
// this face; they are the crate's public vocabulary, hence `wsoak::EXIT_*`.
pub use command::run::{run_scenario, RunOutput};
pub use command::{EXIT_INTERNAL, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE};

use crate::cli::{Cli, Command};

/// Runs a parsed command line; returns the process exit code. Errors are usage errors
/// (exit 2), already worded for people.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run_scenario(&args).map(|out| out.exit_code()),
        Command::Worker => command::worker::worker(),
        Command::Check(args) => command::check::check(&args),
        Command::Serve(args) => command::serve::serve(&args),
        Command::Report(args) => command::report::rerender(&args),
        Command::Compare(args) => command::compare::compare(&args),
        Command::Merge(args) => command::merge::merge(&args),
        Command::Completions { shell } => command::package::completions(shell),
        Command::Man => command::package::man(),
        Command::Schema { of } => command::schema::schema(of),
    }
}
