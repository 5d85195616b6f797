//! `slipway`, the command line of a Slipway server: log in once (or set
//! `SLIPWAY_URL` and `SLIPWAY_TOKEN` in CI), then deploy a git ref or a
//! directory, follow its stages and logs, roll back, and operate apps. It
//! talks only to the API, through the typed client in [`client`].

pub mod args;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod pack;

use clap::Parser;
use error::CliError;
use output::{Out, Paint};
use std::process::ExitCode;

/// Parses the command line, runs the command, and turns its outcome into
/// an exit code: errors print the API's `code` and `message` to stderr.
pub async fn run() -> ExitCode {
    let cli = args::Cli::parse();
    let out = Out::detect(cli.json);
    match commands::dispatch(cli, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let err = Out {
                color: out.color && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                ..out
            };
            eprintln!("{} {error}", err.paint(Paint::Red, "error:"));
            if let CliError::Other(inner) = &error {
                for cause in inner.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::from(error.exit_code())
        }
    }
}
