//! The `actiongate` binary: parse the command line, hand over to `cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = actiongate::cli::Cli::parse();
    actiongate::cli::init_tracing();
    match actiongate::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
