//! `pktgen`: see `pktgen --help`, and the `pktgen` library docs.

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;
use pktgen::cli::{self, Cli, Error};

fn main() -> ExitCode {
    emulator::one_line_panics("pktgen");

    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match cli::run(cli.command, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `pktgen inspect x.pcap | head` closing the pipe is not a failure.
        Err(Error::Output(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
