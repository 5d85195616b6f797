//! The crash-loop policy, pure: how many times a container died within
//! [`CRASH_WINDOW`], and how long its next start waits for that.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Deaths older than this are forgotten.
pub const CRASH_WINDOW: Duration = Duration::from_secs(300);
/// The longest wait before a crashing container is started again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before the next start of a container that died `deaths` times
/// within the window: none for the first two deaths (a one-off crash comes
/// back at once), then 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`].
pub fn backoff(deaths: usize) -> Duration {
    match deaths {
        0..=2 => Duration::ZERO,
        n => {
            let exponent = u32::try_from(n - 3).unwrap_or(u32::MAX).min(16);
            (Duration::from_secs(1) * 2u32.pow(exponent)).min(MAX_BACKOFF)
        }
    }
}

/// Recent deaths per container name.
#[derive(Debug, Default)]
pub struct CrashLog {
    deaths: HashMap<String, Vec<Instant>>,
}

impl CrashLog {
    /// Records a death of `name` at `now`; returns its deaths within the
    /// window, this one included.
    pub fn record(&mut self, name: &str, now: Instant) -> usize {
        self.deaths.retain(|_, times| {
            times
                .last()
                .is_some_and(|t| now.duration_since(*t) < CRASH_WINDOW)
        });
        let times = self.deaths.entry(name.to_owned()).or_default();
        times.retain(|t| now.duration_since(*t) < CRASH_WINDOW);
        times.push(now);
        times.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_after_the_second_death_and_is_capped() {
        let table = [
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 2),
            (5, 4),
            (8, 32),
            (9, 60),
            (1000, 60),
        ];
        for (deaths, secs) in table {
            assert_eq!(
                backoff(deaths),
                Duration::from_secs(secs),
                "{deaths} deaths"
            );
        }
    }

    #[test]
    fn deaths_outside_the_window_are_forgotten() {
        let mut log = CrashLog::default();
        let start = Instant::now();
        assert_eq!(log.record("a", start), 1);
        assert_eq!(log.record("a", start + Duration::from_secs(1)), 2);
        assert_eq!(log.record("b", start + Duration::from_secs(2)), 1);
        assert_eq!(
            log.record("a", start + CRASH_WINDOW + Duration::from_secs(2)),
            1
        );
    }
}
