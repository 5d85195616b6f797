//! The last lists of an engine's app containers, kept for the loops that
//! look often — the health monitor every round, the log followers'
//! backstop look — while the engine's event stream says nothing changed.
//! A list of 100 containers costs podman's service about 100 ms of CPU;
//! looked up afresh by every loop, that was most of what 100 idle apps
//! cost it. The event watcher forgets the lists at every app container's
//! start or death and whenever its stream breaks (see `watch`), and a
//! list is never older than [`MAX_AGE`], so a missed event costs at most
//! that long. A fresh list (the reconciler's pass, a follower's end) is
//! kept too. Users that act on what a list says is wrong look again
//! afresh before they do (see `monitor`).

use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a kept list stands for the engine without an event.
pub const MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Default, Debug)]
pub struct Book {
    inner: Mutex<Lists>,
}

#[derive(Default, Debug)]
struct Lists {
    /// Bumped by every [`Book::forget`]: a list asked for before it is
    /// not kept after it.
    generation: u64,
    /// podman's own list of the app containers (its JSON).
    listed: Option<(Instant, String)>,
    /// The running app containers, `(name, app)`.
    running: Option<(Instant, Vec<(String, Uuid)>)>,
}

/// Where a list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Kept from an earlier look (no request to the engine).
    Kept,
    /// Asked for now.
    Fresh,
}

impl Book {
    /// The engine changed: no kept list stands for it any more.
    pub fn forget(&self) {
        let mut lists = self.lock();
        lists.generation += 1;
        lists.listed = None;
        lists.running = None;
    }

    /// Where the lists stand now; pass it to `keep_*` with a list asked for
    /// after this call.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn listed(&self) -> Option<String> {
        let lists = self.lock();
        recent(&lists.listed).cloned()
    }

    pub fn running(&self) -> Option<Vec<(String, Uuid)>> {
        let lists = self.lock();
        recent(&lists.running).cloned()
    }

    pub fn keep_listed(&self, asked_at: u64, listed: &str) {
        let mut lists = self.lock();
        if lists.generation == asked_at {
            lists.listed = Some((Instant::now(), listed.to_owned()));
        }
    }

    pub fn keep_running(&self, asked_at: u64, running: &[(String, Uuid)]) {
        let mut lists = self.lock();
        if lists.generation == asked_at {
            lists.running = Some((Instant::now(), running.to_vec()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn recent<T>(kept: &Option<(Instant, T)>) -> Option<&T> {
    kept.as_ref()
        .filter(|(at, _)| at.elapsed() < MAX_AGE)
        .map(|(_, list)| list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_kept_until_an_event_forgets_it() {
        let book = Book::default();
        assert_eq!(book.listed(), None);
        let asked = book.generation();
        book.keep_listed(asked, "[1]");
        assert_eq!(book.listed().as_deref(), Some("[1]"));
        book.forget();
        assert_eq!(book.listed(), None);
    }

    #[test]
    fn a_list_asked_for_before_an_event_is_not_kept_after_it() {
        let book = Book::default();
        let asked = book.generation();
        book.forget();
        book.keep_listed(asked, "[stale]");
        book.keep_running(asked, &[("c".into(), Uuid::nil())]);
        assert_eq!(book.listed(), None);
        assert_eq!(book.running(), None);
        let asked = book.generation();
        book.keep_running(asked, &[("c".into(), Uuid::nil())]);
        assert_eq!(book.running(), Some(vec![("c".into(), Uuid::nil())]));
    }
}
