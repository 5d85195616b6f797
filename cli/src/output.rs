//! How results are shown: `--json` prints the API's objects as JSON, else
//! aligned columns for people; colour only when stdout is a terminal and
//! `NO_COLOR` is unset.

use serde::Serialize;
use std::io::IsTerminal;

#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub color: bool,
    /// stdin and stdout are terminals: a person can be asked.
    pub interactive: bool,
}

#[derive(Clone, Copy)]
pub enum Paint {
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
}

impl Out {
    pub fn detect(json: bool) -> Out {
        let terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            json,
            color: terminal && !no_color,
            interactive: terminal && std::io::stdin().is_terminal(),
        }
    }

    pub fn paint(&self, paint: Paint, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match paint {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Yellow => "33",
            Paint::Cyan => "36",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// A deployment or app state in the colour of how it went.
    pub fn state(&self, state: &str) -> String {
        let paint = match state {
            "live" | "running" => Paint::Green,
            "failed" | "cancelled" => Paint::Red,
            "superseded" | "stopped" | "not_deployed" => Paint::Dim,
            _ => Paint::Yellow,
        };
        self.paint(paint, state)
    }

    pub fn json(&self, value: &impl Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("cannot print JSON: {error}"),
        }
    }

    /// Rows under a header, each column as wide as its widest cell.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(visible_len(cell));
                }
            }
        }
        let line = |cells: Vec<String>| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                text.push_str(cell);
                if i + 1 < cells.len() {
                    let pad = widths[i].saturating_sub(visible_len(cell)) + 2;
                    text.push_str(&" ".repeat(pad));
                }
            }
            println!("{}", text.trim_end());
        };
        line(header.iter().map(|h| self.paint(Paint::Bold, h)).collect());
        for row in rows {
            line(row.clone());
        }
    }
}

/// Characters shown, not counting colour escapes.
fn visible_len(text: &str) -> usize {
    let mut count = 0;
    let mut escape = false;
    for c in text.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => count += 1,
        }
    }
    count
}

/// `-` for nothing.
pub fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}
