//! The split of one install into consecutive stages, from the moments the
//! platform recorded (the server operation's log lines and events, the app
//! deployment's events, the install's completion) and the fake recorded
//! (create received, test host answering SSH). Pure, so its arithmetic is
//! tested without a fleet.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;

/// The moments of one install, in the order they must happen.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The bench sent the install request.
    pub requested: DateTime<Utc>,
    /// The fake got the server's create (the fake's own clock, same machine).
    pub create_received: DateTime<Utc>,
    /// The fake's test host answered SSH (the create's boot is inside it).
    pub host_up: DateTime<Utc>,
    /// The create's `step 4/6` line: the server runs, SSH is waited for.
    pub ssh_wait: DateTime<Utc>,
    /// The create's `step 5/6` line: SSH answered with the pinned key.
    pub ssh_ready: DateTime<Utc>,
    /// The server operation's `live` event: set up and checked.
    pub server_ready: DateTime<Utc>,
    /// The app deployment's `live` event (its route switched on the server).
    pub deploy_live: DateTime<Utc>,
    /// The install `completed` (or, over servers + deploy, the app answered).
    pub completed: DateTime<Utc>,
}

/// What the fake makes Slipway wait for that a real provider would: its
/// create action stays `running` for `action_reads` reads, one poll
/// interval apart. The test host's boot is measured, not configured.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedWaits {
    pub action_reads: u32,
    pub poll_interval: Duration,
}

impl SimulatedWaits {
    pub fn create_action(&self) -> Duration {
        self.poll_interval * self.action_reads.saturating_sub(1)
    }
}

pub const STAGES: [&str; 7] = [
    "provider_create",
    "test_host_up",
    "provider_running",
    "ssh_ready",
    "setup",
    "deploy",
    "verify",
];

/// Milliseconds of each stage, the total and Slipway's own part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub stages: [f64; 7],
    pub total_ms: f64,
    pub host_boot_ms: f64,
    pub simulated_wait_ms: f64,
    pub overhead_ms: f64,
}

impl Split {
    pub fn of(timeline: &Timeline, waits: &SimulatedWaits) -> anyhow::Result<Split> {
        let t = timeline;
        let marks = [
            t.requested,
            t.create_received,
            t.host_up,
            t.ssh_wait,
            t.ssh_ready,
            t.server_ready,
            t.deploy_live,
            t.completed,
        ];
        let mut stages = [0.0; 7];
        for (i, pair) in marks.windows(2).enumerate() {
            anyhow::ensure!(
                pair[0] <= pair[1],
                "stage {} ends before it begins: {timeline:?}",
                STAGES[i]
            );
            stages[i] = ms(pair[1] - pair[0]);
        }
        let total_ms = ms(t.completed - t.requested);
        let host_boot_ms = stages[1];
        let simulated_wait_ms = waits.create_action().as_secs_f64() * 1000.0;
        Ok(Split {
            stages,
            total_ms,
            host_boot_ms,
            simulated_wait_ms,
            overhead_ms: total_ms - host_boot_ms - simulated_wait_ms,
        })
    }

    pub fn stages_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, value) in STAGES.iter().zip(self.stages) {
            map.insert(format!("{name}_ms"), json!(value.round()));
        }
        Value::Object(map)
    }
}

fn ms(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn timeline() -> Timeline {
        Timeline {
            requested: at(0),
            create_received: at(300),
            host_up: at(4_300),
            ssh_wait: at(6_400),
            ssh_ready: at(6_600),
            server_ready: at(40_000),
            deploy_live: at(52_000),
            completed: at(52_500),
        }
    }

    #[test]
    fn stages_add_up_and_the_fakes_waits_are_taken_out() {
        let waits = SimulatedWaits {
            action_reads: 2,
            poll_interval: Duration::from_secs(2),
        };
        let split = Split::of(&timeline(), &waits).unwrap();
        assert_eq!(
            split.stages,
            [300.0, 4_000.0, 2_100.0, 200.0, 33_400.0, 12_000.0, 500.0]
        );
        assert_eq!(split.stages.iter().sum::<f64>(), split.total_ms);
        assert_eq!(
            (split.host_boot_ms, split.simulated_wait_ms),
            (4_000.0, 2_000.0)
        );
        assert_eq!(split.overhead_ms, 52_500.0 - 4_000.0 - 2_000.0);
        assert_eq!(split.stages_json()["setup_ms"], 33_400.0);
    }

    #[test]
    fn a_timeline_out_of_order_is_refused() {
        let mut t = timeline();
        t.deploy_live = at(39_000);
        let waits = SimulatedWaits {
            action_reads: 2,
            poll_interval: Duration::from_secs(2),
        };
        let error = Split::of(&t, &waits).unwrap_err().to_string();
        assert!(error.contains("stage deploy"), "{error}");
    }
}
