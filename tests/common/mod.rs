//! Helpers shared by the integration tests.

// Each test crate uses a different subset of these.
#![allow(dead_code)]

use std::process::Command;

pub mod schema;

use clap::Parser;
use wsoak::cli::{Cli, Command as Sub};

/// Auth, bindCard and a 100 ms heartbeat against the reference server's replies.
pub const FLOW: &str = "\
auth:
  send: {type: auth}
  expect: {code: \"200\", msgType: auth_ack}
bind_card:
  send: {type: bindCard}
  expect: {msgType: bindCard_ack}
heartbeat:
  interval: 100ms
  send: {type: heartBeat}
  expect: {msgType: heartBeat_ack}
  timeout: 90ms
";

/// The real binary.
pub fn wsoak() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsoak"))
}

/// `wsoak run --quiet ARGS…` in this process, through the same entry point as the
/// binary.
pub fn run(args: &[&str]) -> anyhow::Result<wsoak::RunOutput> {
    let mut argv = vec!["wsoak", "run", "--quiet"];
    argv.extend_from_slice(args);
    let Sub::Run(run) = Cli::parse_from(argv).command else {
        unreachable!("argv starts with `run`")
    };
    wsoak::run_scenario(&run)
}
