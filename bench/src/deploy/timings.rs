//! The deploy job's own timings, read back from its log lines (see
//! worker-deploy's handler): the pull, the container start, the health
//! check and the route switch.

/// One deploy's split, in seconds.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub pull_s: f64,
    pub start_s: f64,
    pub health_s: f64,
    pub switch_s: f64,
}

/// The number right before the `s` that follows `after` in `line`.
fn seconds_after(line: &str, after: &str) -> Option<f64> {
    let rest = &line[line.find(after)? + after.len()..];
    let number: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number.parse().ok()
}

/// Reads `pulled in Xs`, `started NAME on ADDR in Xs`, `healthy: ... in Xs`
/// and `...; start Xs, health Xs, switch Xs`. Every one must be there: a
/// deploy that skipped its pull is not a measurement of one.
pub fn parse(lines: &[String]) -> anyhow::Result<Split> {
    let find = |prefix: &str, after: &str| -> anyhow::Result<f64> {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .find_map(|l| seconds_after(l, after))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no `{prefix}` line with a time in the deploy log:\n{}",
                    lines.join("\n")
                )
            })
    };
    Ok(Split {
        pull_s: find("pulled in", "pulled in")?,
        start_s: find("started ", " in ")?,
        health_s: find("healthy:", " in ")?,
        switch_s: find("route ", "switch ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_handlers_lines_are_read() {
        let lines: Vec<String> = [
            "pulling r@sha256:1",
            "pulled in 0.31s; starting slipway-a-b",
            "started slipway-a-b on 127.0.0.1:4000 in 0.42s",
            "healthy: 200 OK after 2 tries in 0.26s",
            "route a.b.localhost -> 127.0.0.1:4000 (slipway-a-b); start 0.73s, health 0.26s, switch 0.01s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let split = parse(&lines).expect("all four");
        assert_eq!(
            (split.pull_s, split.start_s, split.health_s, split.switch_s),
            (0.31, 0.42, 0.26, 0.01)
        );
        assert!(parse(&lines[2..]).is_err());
        // The listening check's line.
        let mut listening = lines.clone();
        listening[3] =
            "healthy: port 8080 listening inside the container and up 1.0 s: 4 looks in 1.02s"
                .into();
        assert_eq!(parse(&listening).map(|s| s.health_s).ok(), Some(1.02));
    }
}
