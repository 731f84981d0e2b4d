//! The `sinkflow` binary: CLI, validation campaign, plots and report.
//!
//! `cargo run --release` with no arguments runs the quick validation campaign.

mod cli;
mod validation;

use clap::Parser;

fn main() {
    let parsed = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help / --version are not errors; everything else is bad input (exit 2).
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = cli::run(parsed) {
        eprintln!("error: {}", e.message);
        std::process::exit(e.exit_code());
    }
}
