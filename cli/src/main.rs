//! The `slipway` binary: parses the command line and hands it to the
//! library, which owns everything else (`slipway_cli::run`).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    slipway_cli::run().await
}
