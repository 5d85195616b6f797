//! The Grafana dashboard (`compose/grafana/dashboards/slipway.json`) has
//! the shape Grafana loads: a `datasource` variable every panel and target
//! uses, panels on the 24-column grid with unique ids, targets with unique
//! refIds and PromQL, and no variable in a query that is neither declared
//! nor one of Grafana's own. [`queries`] gives every query with the
//! variables substituted, for the scrape test to run against Prometheus.

use serde_json::Value;
use std::collections::HashSet;

/// Grafana's built-in variables the queries may use, and what the scrape
/// test puts in their place (the scrape interval there is 1 s).
pub const BUILTINS: [(&str, &str); 3] = [
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "5m"),
];

pub fn load() -> anyhow::Result<Value> {
    let path = crate::compose_dir().join("grafana/dashboards/slipway.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Every panel that is not a row.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .map(|panels| panels.iter().filter(|p| p["type"] != "row").collect())
        .unwrap_or_default()
}

/// The variables (`$name`, `${name}`) `expr` uses.
pub fn variables(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if braced || !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// `expr` with Grafana's variables replaced: the built-ins by
/// [`BUILTINS`], the dashboard's own by `values`.
pub fn substitute(expr: &str, values: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = BUILTINS.to_vec();
    all.extend_from_slice(values);
    // Longest names first, so `$__rate_interval` is not read as `$__r…`.
    all.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in all {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Every query of the dashboard, with the panel's title, once per value of
/// `stage` for the queries that use it (`.*` is the "All" value).
pub fn queries(dashboard: &Value, stages: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            if variables(expr).iter().any(|v| v == "stage") {
                for stage in stages {
                    out.push((
                        format!("{title} (stage {stage})"),
                        substitute(expr, &[("stage", stage)]),
                    ));
                }
            } else {
                out.push((title.to_owned(), substitute(expr, &[])));
            }
        }
    }
    out
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> anyhow::Result<()> {
    let dashboard = load()?;
    for key in ["title", "uid"] {
        assert!(
            dashboard[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    assert!(dashboard["schemaVersion"].as_i64() >= Some(36));
    let variables_declared: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .collect();
    let datasource = variables_declared
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let mut names: HashSet<String> = variables_declared
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    names.extend(BUILTINS.iter().map(|(name, _)| (*name).to_owned()));
    let uses_datasource = |v: &Value| v["type"] == "prometheus" && v["uid"] == "${datasource}";
    for variable in &variables_declared {
        if variable["type"] == "query" {
            assert!(uses_datasource(&variable["datasource"]), "{variable}");
        }
    }

    let panels = panels(&dashboard);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = HashSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_i64().expect("id")),
            "duplicate id {panel}"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_i64().unwrap_or(-1),
            grid["w"].as_i64().unwrap_or(0),
        );
        assert!(
            x >= 0 && w > 0 && x + w <= 24 && grid["h"].as_i64() > Some(0),
            "{grid}"
        );
        assert!(grid["y"].as_i64() >= Some(0), "{grid}");
    }
    for panel in panels {
        let title = panel["title"].as_str().expect("title");
        assert!(
            ["timeseries", "stat", "gauge", "table", "bargauge"]
                .contains(&panel["type"].as_str().unwrap_or_default()),
            "{title}: type {}",
            panel["type"]
        );
        assert!(uses_datasource(&panel["datasource"]), "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no targets");
        let mut ref_ids = HashSet::new();
        for target in targets {
            assert!(
                ref_ids.insert(target["refId"].as_str().expect("refId")),
                "{title}"
            );
            assert!(uses_datasource(&target["datasource"]), "{title}");
            let expr = target["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty(), "{title}");
            for variable in variables(expr) {
                assert!(
                    names.contains(&variable),
                    "{title}: ${variable} is not declared"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn substitution_replaces_every_variable() {
    let expr = r#"sum(rate(x{stage=~"$stage"}[$__rate_interval])) / sum(increase(y[${__range}]))"#;
    assert_eq!(variables(expr), vec!["stage", "__rate_interval", "__range"]);
    let done = substitute(expr, &[("stage", "build")]);
    assert_eq!(
        done,
        r#"sum(rate(x{stage=~"build"}[1m])) / sum(increase(y[5m]))"#
    );
}
