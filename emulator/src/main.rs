//! `emulator`: see `emulator --help`, and the `emulator` library docs.

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;
use emulator::cli::{self, Cli, Error};

fn main() -> ExitCode {
    // A bug must still end in one line an operator can report, not a trace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("emulator: internal error: {msg}{at}");
    }));

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
