use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wsoak::cli::Cli::parse();
    match wsoak::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            wsoak::out::note_line(format_args!("wsoak: error: {e:#}"));
            ExitCode::from(wsoak::EXIT_USAGE)
        }
    }
}
