//! `wsoak completions SHELL` and `wsoak man`: what packagers ship beside the binary,
//! generated from the same clap definition as `--help`, so they never drift from it.

use clap::CommandFactory as _;

use super::EXIT_OK;
use crate::cli::Cli;

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "wsoak", &mut out);
    say_raw!("{}", String::from_utf8_lossy(&out));
    Ok(EXIT_OK)
}

/// Prints the manual page, in roff, on stdout.
pub(crate) fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    say_raw!("{}", String::from_utf8_lossy(&out));
    Ok(EXIT_OK)
}

/// `command` without what `--help` hides (the worker processes' own subcommand and
/// flags): some shells' generators would offer them otherwise.
fn visible(command: &clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(command.get_name().to_string())
        .args(
            command
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .cloned(),
        )
        .subcommands(
            command
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        );
    if let Some(about) = command.get_about() {
        shown = shown.about(about.clone());
    }
    if let Some(version) = command.get_version() {
        shown = shown.version(version.to_string());
    }
    shown
}
