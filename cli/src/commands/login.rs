//! `slipway login`: asks for (or takes) the API URL and a token, checks
//! them against the API, and stores them (see [`crate::config`]).

use crate::args::Login;
use crate::client::Client;
use crate::config::{self, Endpoint, Stored};
use crate::error::{CliError, Result};
use crate::output::{Out, Paint};
use std::io::{BufRead, IsTerminal, Write};

pub async fn run(args: &Login, url_flag: Option<&str>, out: Out) -> Result<()> {
    let stored = config::load()?;
    let url = match args.api.as_deref().or(url_flag) {
        Some(url) => url.to_owned(),
        None if out.interactive => ask("API URL", stored.url.as_deref(), false)?,
        None => stored.url.clone().ok_or_else(|| {
            CliError::local("no_url", "give the API URL: slipway login --api URL")
        })?,
    };
    // Refused before a token is asked for or sent.
    let parsed = config::parse_url(&url)?;
    let token = match &args.token {
        Some(token) => token.clone(),
        None if std::env::var("SLIPWAY_TOKEN").is_ok_and(|t| !t.is_empty()) => {
            std::env::var("SLIPWAY_TOKEN").unwrap_or_default()
        }
        None if out.interactive => ask("Token", None, true)?,
        None => read_line_from_stdin()?,
    };
    if token.trim().is_empty() {
        return Err(CliError::local("no_token", "the token is empty"));
    }
    let client = Client::new(Endpoint {
        url: parsed.clone(),
        token: token.trim().to_owned(),
    })?;
    let kind = check(&client).await?;
    let path = config::save(&Stored {
        url: Some(parsed.to_string()),
        token: Some(token.trim().to_owned()),
    })?;
    if out.json {
        out.json(&serde_json::json!({"url": parsed.as_str(), "token_kind": kind, "config": path}));
    } else {
        println!(
            "{} logged in to {} with a {kind} token (saved in {})",
            out.paint(Paint::Green, "✓"),
            parsed,
            path.display()
        );
    }
    Ok(())
}

/// Which kind of token this is: a project's (it reads apps) or the admin's.
async fn check(client: &Client) -> Result<&'static str> {
    match client.get::<serde_json::Value>("/v1/apps").await {
        Ok(_) => Ok("project"),
        Err(CliError::Api { status: 403, .. }) => {
            client.get::<serde_json::Value>("/v1/projects").await?;
            Ok("admin")
        }
        Err(error) => Err(error),
    }
}

fn ask(prompt: &str, default: Option<&str>, secret: bool) -> Result<String> {
    match default {
        Some(d) => eprint!("{prompt} [{d}]: "),
        None => eprint!("{prompt}: "),
    }
    let _ = std::io::stderr().flush();
    let answer = if secret {
        read_hidden()?
    } else {
        read_line_from_stdin()?
    };
    Ok(match (answer.is_empty(), default) {
        (true, Some(d)) => d.to_owned(),
        _ => answer,
    })
}

fn read_line_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Other(e.into()))?;
    Ok(line.trim().to_owned())
}

/// A line read with the terminal's echo off, so the token is not shown.
fn read_hidden() -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_line_from_stdin();
    }
    let saved = tcgetattr(&stdin).map_err(|e| CliError::Other(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| CliError::Other(e.into()))?;
    let line = read_line_from_stdin();
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    line
}
