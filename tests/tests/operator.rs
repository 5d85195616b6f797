//! What operators watch the fleet with, checked against the real tools:
//! the alert rules with `promtool` (syntax, and unit tests in which every
//! alert fires), the Grafana dashboard's shape, and a real Prometheus
//! scraping a running fleet under a short load, where every PromQL
//! expression of the dashboard must return data. Prometheus and promtool
//! come from Debian's `prometheus` package (scripts/test-tools.sh).

mod common;

mod operator {
    pub mod dashboard;
    pub mod fleet_gauges;
    pub mod prometheus;
    pub mod rules;
    pub mod scrape;
}

/// `compose/` of the repository, where the rules and the dashboard live.
pub fn compose_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .join("compose")
}
