//! The event stream's resume point, sent as every SSE event's id so that
//! `Last-Event-ID` carries all of it: the last event's `(xid, id)`, then the
//! last sequence number of each followed log source, in the order the query
//! names them (`XID.ID~SEQ~SEQ…`). A reconnecting `EventSource` reuses its
//! URL, so the order is the same.

use std::fmt;

/// An event's place in the stream: ordered by writing transaction, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventPos {
    pub xid: u64,
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub events: EventPos,
    pub seqs: Vec<i64>,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.events.xid, self.events.id)?;
        for seq in &self.seqs {
            write!(f, "~{seq}")?;
        }
        Ok(())
    }
}

impl Cursor {
    /// Parses a `Last-Event-ID` for a stream following `sources` log sources.
    pub fn parse(text: &str, sources: usize) -> Option<Cursor> {
        let mut parts = text.split('~');
        let (xid, id) = parts.next()?.split_once('.')?;
        let events = EventPos {
            xid: xid.parse().ok()?,
            id: id.parse().ok().filter(|id: &i64| *id >= 0)?,
        };
        let seqs: Vec<i64> = parts
            .map(|p| p.parse().ok().filter(|seq: &i64| *seq >= 0))
            .collect::<Option<_>>()?;
        (seqs.len() == sources).then_some(Cursor { events, seqs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let cursor = Cursor {
            events: EventPos { xid: 812, id: 55 },
            seqs: vec![10, 0, 4],
        };
        assert_eq!(cursor.to_string(), "812.55~10~0~4");
        assert_eq!(Cursor::parse("812.55~10~0~4", 3), Some(cursor));
        assert_eq!(Cursor::parse("812.55", 0).map(|c| c.seqs.len()), Some(0));
        for bad in ["812.55~10", "812~1~2~3", "x.1", "1.-1", "1.2~-3~0~0", ""] {
            assert_eq!(Cursor::parse(bad, 3), None, "{bad}");
        }
    }
}
