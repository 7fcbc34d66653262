//! The `cohsh` binary: parses the command line and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cohsh::cli::Cli::parse();
    ExitCode::from(cohsh::run(cli))
}
