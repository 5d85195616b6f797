//! Server-sent events from a streaming answer: `event`, `id` and `data`
//! fields, one event per blank line (the log streams' `log` and `end`).

use futures::{Stream, StreamExt};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Parses the bytes of `text/event-stream` into events as they arrive.
pub fn events(response: reqwest::Response) -> impl Stream<Item = Result<Event, reqwest::Error>> {
    let bytes = response.bytes_stream();
    futures::stream::unfold(
        (bytes, Vec::<u8>::new(), Event::default(), false),
        |(mut bytes, mut buffer, mut event, mut done)| async move {
            loop {
                if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end_matches(['\n', '\r']);
                    if let Some(ready) = feed(&mut event, line) {
                        return Some((Ok(ready), (bytes, buffer, event, done)));
                    }
                    continue;
                }
                if done {
                    return None;
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(error)) => {
                        done = true;
                        return Some((Err(error), (bytes, buffer, event, done)));
                    }
                    None => done = true,
                }
            }
        },
    )
}

/// One line into the event being read; a blank line completes it.
fn feed(event: &mut Event, line: &str) -> Option<Event> {
    if line.is_empty() {
        let ready = std::mem::take(event);
        return (!ready.data.is_empty() || !ready.event.is_empty()).then_some(ready);
    }
    if line.starts_with(':') {
        return None; // a comment: the keep-alive
    }
    let (field, value) = line.split_once(':').unwrap_or((line, ""));
    let value = value.strip_prefix(' ').unwrap_or(value);
    match field {
        "event" => event.event = value.to_owned(),
        "id" => event.id = Some(value.to_owned()),
        "data" => {
            if !event.data.is_empty() {
                event.data.push('\n');
            }
            event.data.push_str(value);
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_make_events() {
        let mut event = Event::default();
        assert_eq!(feed(&mut event, ": keep-alive"), None);
        assert_eq!(feed(&mut event, "event: log"), None);
        assert_eq!(feed(&mut event, "id: 7"), None);
        assert_eq!(feed(&mut event, "data: {\"a\":1}"), None);
        let ready = feed(&mut event, "").expect("an event");
        assert_eq!(ready.event, "log");
        assert_eq!(ready.id.as_deref(), Some("7"));
        assert_eq!(ready.data, "{\"a\":1}");
        assert_eq!(feed(&mut event, ""), None);
    }
}
