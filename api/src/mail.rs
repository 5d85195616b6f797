//! Links and mail for people: invitation and password-reset links are
//! built on `SLIPWAY_PUBLIC_URL`, and mailed when `SLIPWAY_SMTP_URL` names
//! a server. The API answers the link either way, so an instance without
//! mail still works: the admin hands the link over.

use crate::state::AppState;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// `path` on the public URL, or the path alone when none is configured.
pub fn link(state: &AppState, path: &str) -> String {
    match &state.accounts.public_url {
        Some(base) => format!("{base}{path}"),
        None => path.to_owned(),
    }
}

/// Mails `body` to `to` when SMTP is configured; whether it was accepted.
/// A mail server that refuses is logged, not the caller's failure: the
/// link is in the answer.
pub async fn send(state: &AppState, to: &str, subject: &str, body: &str) -> bool {
    let Some(smtp) = &state.accounts.smtp else {
        return false;
    };
    match deliver(&smtp.url, &smtp.from, to, subject, body).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "mail not sent");
            false
        }
    }
}

async fn deliver(url: &str, from: &str, to: &str, subject: &str, body: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let message = Message::builder()
        .from(from.parse::<Mailbox>().context("SLIPWAY_SMTP_FROM")?)
        .to(to.parse::<Mailbox>().context("recipient")?)
        .subject(subject)
        .body(body.to_owned())
        .context("building the mail")?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .context("SLIPWAY_SMTP_URL")?
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport.send(message).await.context("sending the mail")?;
    Ok(())
}
