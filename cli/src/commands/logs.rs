//! `slipway logs APP [-f] [--since 10m]`: the app's runtime logs, read in
//! pages, or followed over the API's event stream (which ends when the app
//! is destroyed). `--json` prints one JSON object per line.

use super::Ctx;
use crate::args::Logs;
use crate::client::logs::Line;
use crate::error::{CliError, Result};
use crate::output::Paint;
use futures::StreamExt;

pub async fn run(ctx: &Ctx, args: Logs) -> Result<()> {
    let since = args.since.as_deref();
    if !args.follow {
        let mut after = 0;
        loop {
            let page = ctx.client.app_logs(&args.app, after, since).await?;
            for line in &page.lines {
                print(ctx, line);
            }
            if page.lines.is_empty() || page.next == after {
                return Ok(());
            }
            after = page.next;
        }
    }
    let mut events = Box::pin(ctx.client.app_log_stream(&args.app, since).await?);
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| CliError::Transport {
            url: ctx.client.base().to_string(),
            detail: format!("the log stream broke: {e}"),
        })?;
        match event.event.as_str() {
            "log" => match serde_json::from_str::<Line>(&event.data) {
                Ok(line) => print(ctx, &line),
                Err(error) => eprintln!("(a log event this client cannot read: {error})"),
            },
            "end" => {
                eprintln!(
                    "{}",
                    ctx.out
                        .paint(Paint::Dim, &format!("(stream ended: {})", event.data))
                );
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}

fn print(ctx: &Ctx, line: &Line) {
    if ctx.out.json {
        match serde_json::to_string(line) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("cannot print JSON: {error}"),
        }
        return;
    }
    let at = line.at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let text = if line.stream == "stderr" {
        ctx.out.paint(Paint::Yellow, &line.line)
    } else {
        line.line.clone()
    };
    println!("{} {text}", ctx.out.paint(Paint::Dim, &at));
}
