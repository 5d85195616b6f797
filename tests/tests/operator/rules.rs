//! The alert rules pass `promtool check rules`, the compose Prometheus
//! configuration passes `promtool check config`, and the unit tests in
//! `alerts.test.yml` pass `promtool test rules` — with every alert of the
//! rules file expected to fire in at least one of them.

use std::process::Command;

fn promtool(args: &[&str]) -> anyhow::Result<String> {
    let dir = crate::compose_dir().join("prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .map_err(|e| anyhow::anyhow!("promtool (scripts/test-tools.sh installs it): {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "promtool {args:?} failed:\n{text}");
    Ok(text)
}

/// The names after `key: ` on the lines of `text` that carry it.
fn values_of<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|line| line.trim().trim_start_matches("- ").strip_prefix(key))
        .map(str::trim)
        .collect()
}

#[test]
fn rules_and_config_pass_promtool_check() -> anyhow::Result<()> {
    let rules = promtool(&["check", "rules", "alerts.yml"])?;
    let text = std::fs::read_to_string(crate::compose_dir().join("prometheus/alerts.yml"))?;
    let alerts = values_of(&text, "alert:");
    assert!(
        rules.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{rules}"
    );
    promtool(&["check", "config", "prometheus.yml"])?;
    Ok(())
}

#[test]
fn every_alert_fires_in_the_promtool_unit_tests() -> anyhow::Result<()> {
    promtool(&["test", "rules", "alerts.test.yml"])?;
    let dir = crate::compose_dir().join("prometheus");
    let rules = std::fs::read_to_string(dir.join("alerts.yml"))?;
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml"))?;
    // An evaluation expecting alerts is an `alertname:` line followed by
    // `exp_alerts:` with entries (not `exp_alerts: []`).
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let firing: Vec<&str> = lines
        .windows(2)
        .filter(|pair| pair[1] == "exp_alerts:")
        .filter_map(|pair| pair[0].strip_prefix("alertname:"))
        .map(str::trim)
        .collect();
    let alerts = values_of(&rules, "alert:");
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in &alerts {
        assert!(
            firing.contains(alert),
            "no unit test in alerts.test.yml expects {alert} to fire"
        );
    }
    Ok(())
}
