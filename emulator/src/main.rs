//! `emulator`: see `emulator --help`, and the `emulator` library docs.

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;
use emulator::cli::{self, Cli, Error};

fn main() -> ExitCode {
    emulator::one_line_panics("emulator");

    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match cli::run(cli.command, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // `emulator inspect x.pcap | head` closing the pipe is not a failure.
        Err(Error::Output(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emulator: error: {e}");
            ExitCode::FAILURE
        }
    }
}
