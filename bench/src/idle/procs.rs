//! CPU and memory of the processes an idle fleet keeps busy, read from
//! `/proc`: the host's busy time (`/proc/stat`) and a per-process table
//! grouped by role (each worker with its children, the API, the podman
//! service, the apps' `conmon`s, the apps themselves, the fleet's Postgres
//! backends). A worker's children that ended between two samples are
//! counted through its `cutime`/`cstime`, which is where short-lived
//! `podman` commands spent by a polling worker show up.

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 on
/// Linux x86-64).
pub const TICKS: f64 = 100.0;

/// `(busy, total)` jiffies of all CPUs from the first line of `/proc/stat`.
pub fn host_jiffies() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    anyhow::ensure!(fields.len() >= 5, "unexpected /proc/stat: {line}");
    let total: u64 = fields.iter().take(8).sum();
    // idle + iowait are not busy.
    Ok((total - fields[3] - fields[4], total))
}

/// One process as `/proc/PID/stat` and `cmdline` show it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    pub cmdline: String,
    /// utime + stime.
    pub own: u64,
    /// cutime + cstime: children already reaped.
    pub reaped: u64,
}

/// Every process now, by pid.
pub fn snapshot() -> BTreeMap<i32, Proc> {
    let mut all = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(proc) = read(pid) {
            all.insert(pid, proc);
        }
    }
    all
}

fn read(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm is in parentheses and may hold spaces.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        comm,
        cmdline,
        // Fields 14-17 of stat, counted from `state` (field 3) here.
        own: num(11) + num(12),
        reaped: num(13) + num(14),
    })
}

/// The pids in the tree under `root` (itself included).
pub fn tree(all: &BTreeMap<i32, Proc>, root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.values().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    found.retain(|pid| all.contains_key(pid));
    found
}

/// CPU jiffies the processes `pids` (as of `after`) used between two
/// snapshots; `roots` also count their reaped children.
pub fn used(
    before: &BTreeMap<i32, Proc>,
    after: &BTreeMap<i32, Proc>,
    pids: &[i32],
    roots: &[i32],
) -> u64 {
    pids.iter()
        .filter_map(|pid| after.get(pid).map(|a| (a, before.get(pid))))
        .map(|(a, b)| {
            let mut now = a.own;
            let mut then = b.map_or(0, |b| b.own);
            if roots.contains(&a.pid) {
                now += a.reaped;
                then += b.map_or(0, |b| b.reaped);
            }
            now.saturating_sub(then)
        })
        .sum()
}

/// Resident memory of `pid` in MB (`VmRSS`).
pub fn rss_mb(pid: i32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Which processes count as what, for one run.
pub struct Roles {
    fleet: Vec<(String, i32)>,
    db_name: String,
    /// The random part of each app's id, which names its containers.
    app_marks: Vec<String>,
}

/// One measured window.
pub struct Window {
    /// Busy cores of the host.
    pub host: f64,
    /// Cores per role.
    pub table: serde_json::Map<String, serde_json::Value>,
    /// Cores of the busiest processes outside the roles, by command name
    /// (kernel threads among them), and what no process alive at the
    /// window's end accounts for (processes that came and went unreaped
    /// by a process of the table, interrupts): where the host-wide
    /// difference goes that the table does not show.
    pub others: serde_json::Map<String, serde_json::Value>,
}

/// How many of the busiest other processes a window names.
const OTHERS: usize = 8;

impl Window {
    pub fn fleet_total(&self) -> f64 {
        self.table
            .values()
            .filter_map(serde_json::Value::as_f64)
            .sum()
    }
}

impl Roles {
    pub fn new(fleet: Vec<(String, i32)>, db_name: &str, apps: &[super::App]) -> Roles {
        Roles {
            fleet,
            db_name: db_name.to_owned(),
            app_marks: apps
                .iter()
                .map(|a| format!("slipway-{}", a.id.rsplit('-').next().unwrap_or_default()))
                .collect(),
        }
    }

    /// Samples the host and every role over `window`.
    pub async fn window(&self, window: std::time::Duration) -> anyhow::Result<Window> {
        let (busy0, total0) = host_jiffies()?;
        let before = snapshot();
        tokio::time::sleep(window).await;
        let (busy1, total1) = host_jiffies()?;
        let after = snapshot();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let host = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cpus;
        let secs = window.as_secs_f64();
        let cores = |jiffies: u64| (jiffies as f64 / TICKS / secs * 1000.0).round() / 1000.0;
        let mut table = serde_json::Map::new();
        let is_service =
            |p: &Proc| p.cmdline.contains("podman") && p.cmdline.contains("system service");
        // The fleet's own service (the deploy worker's child), not another
        // fleet's on a shared machine.
        let service: Vec<i32> = self
            .fleet
            .iter()
            .flat_map(|(_, pid)| tree(&after, *pid))
            .filter(|pid| after.get(pid).is_some_and(is_service))
            .collect();
        let service_trees: Vec<i32> = service.iter().flat_map(|pid| tree(&after, *pid)).collect();
        for (name, pid) in &self.fleet {
            let mut pids = tree(&after, *pid);
            pids.retain(|p| !service_trees.contains(p));
            table.insert(
                name.clone(),
                cores(used(&before, &after, &pids, &[*pid])).into(),
            );
        }
        table.insert(
            "podman_service".into(),
            cores(used(&before, &after, &service_trees, &service)).into(),
        );
        let conmons: Vec<i32> = after
            .values()
            .filter(|p| {
                p.comm == "conmon"
                    && self
                        .app_marks
                        .iter()
                        .any(|m| p.cmdline.contains(m.as_str()))
            })
            .map(|p| p.pid)
            .collect();
        let app_procs: Vec<i32> = conmons
            .iter()
            .flat_map(|pid| tree(&after, *pid).into_iter().skip(1))
            .collect();
        table.insert(
            "conmon".into(),
            cores(used(&before, &after, &conmons, &[])).into(),
        );
        table.insert(
            "apps".into(),
            cores(used(&before, &after, &app_procs, &[])).into(),
        );
        let backend = format!(" {} ", self.db_name);
        let postgres: Vec<i32> = after
            .values()
            .filter(|p| p.cmdline.starts_with("postgres: ") && p.cmdline.contains(&backend))
            .map(|p| p.pid)
            .collect();
        table.insert(
            "postgres_backends".into(),
            cores(used(&before, &after, &postgres, &[])).into(),
        );
        let mut counted: std::collections::BTreeSet<i32> = self
            .fleet
            .iter()
            .flat_map(|(_, pid)| tree(&after, *pid))
            .collect();
        counted.extend(service_trees.iter().chain(&conmons).chain(&app_procs));
        counted.extend(&postgres);
        let mut by_comm: BTreeMap<String, u64> = BTreeMap::new();
        let everyone: Vec<i32> = after.keys().copied().collect();
        for pid in everyone.iter().filter(|pid| !counted.contains(pid)) {
            let jiffies = used(&before, &after, &[*pid], &[]);
            if jiffies > 0 {
                *by_comm.entry(after[pid].comm.clone()).or_default() += jiffies;
            }
        }
        let mut busiest: Vec<(String, u64)> = by_comm.into_iter().collect();
        busiest.sort_by_key(|b| std::cmp::Reverse(b.1));
        let mut others: serde_json::Map<String, serde_json::Value> = busiest
            .into_iter()
            .take(OTHERS)
            .map(|(comm, jiffies)| (comm, cores(jiffies).into()))
            .collect();
        let seen = cores(used(&before, &after, &everyone, &[]));
        others.insert(
            "unattributed".into(),
            (((host - seen) * 1000.0).round() / 1000.0).max(0.0).into(),
        );
        Ok(Window {
            host,
            table,
            others,
        })
    }
}
