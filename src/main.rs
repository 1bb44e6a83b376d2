//! The `chirpd` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chirpd::cli::Cli::parse();
    chirpd::cli::main(cli)
}
