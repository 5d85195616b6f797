//! schemathesis against the real API: the API alone (no workers, so
//! nothing the fuzzer invents makes a worker contact a host), a project
//! token, every check, the stateful phase following the document's links.
//! Passes with no server error and no answer that breaks the document, and
//! only when every operation was exercised with valid data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Test cases per operation and phase: enough to find what earlier runs
/// found, small enough for a minute or two.
const MAX_EXAMPLES: &str = "10";

/// Operations that cannot succeed here, and the answers that show valid
/// data reached their logic (an empty list: the fuzzer never calls it).
const NO_SUCCESS_HERE: &[(&str, &[u16])] = &[
    // No release exists before a deploy worker makes one: `not_deployed`.
    ("POST /v1/apps/{app}/stop", &[409]),
    ("POST /v1/apps/{app}/start", &[409]),
    ("POST /v1/apps/{app}/restart", &[409]),
    ("POST /v1/apps/{app}/scale", &[409]),
    // The event stream needs a deployment id or app name of the project
    // (422 without one, 404 for a random one). The document links
    // create_app to it, but the stateful phase did not follow that link
    // within its steps in the runs of 2026-12-05: the 2xx path is tested in
    // `dashboard.rs`. To revisit: make the fuzzer follow the link.
    ("GET /v1/events", &[404, 422]),
    // No job dies without a worker to run it.
    ("POST /v1/dead-jobs/{id}/redrive", &[404]),
    // A push must be signed with the app's secret, which the fuzzer cannot.
    ("POST /v1/hooks/{provider}/{app_id}", &[404]),
    // Random bytes are no archive (`archive_invalid`), so no version exists.
    ("POST /v1/apps/{app}/versions", &[422]),
    ("GET /v1/apps/{app}/versions/{id}", &[404]),
    ("GET /v1/apps/{app}/versions/{id}/archive", &[404]),
    // Projects and people need a platform admin; the fuzzer holds a
    // project owner's token.
    ("POST /v1/projects", &[403]),
    ("GET /v1/users", &[403]),
    ("DELETE /v1/users/{id}", &[403]),
    ("POST /v1/users/{id}/disable", &[403]),
    ("POST /v1/users/{id}/enable", &[403]),
    ("POST /v1/users/{id}/password-reset", &[403]),
    // The fuzzer cannot know its project's id (no answer it reads names
    // it), so a project's tokens, members and invitations are not found.
    ("POST /v1/projects/{project_id}/tokens", &[404]),
    ("GET /v1/projects/{project_id}/tokens", &[404]),
    ("DELETE /v1/projects/{project_id}/tokens/{token_id}", &[404]),
    ("GET /v1/projects/{project_id}/members", &[404]),
    ("PATCH /v1/projects/{project_id}/members/{user_id}", &[404]),
    ("DELETE /v1/projects/{project_id}/members/{user_id}", &[404]),
    ("POST /v1/projects/{project_id}/invitations", &[404]),
    ("GET /v1/projects/{project_id}/invitations", &[404]),
    (
        "DELETE /v1/projects/{project_id}/invitations/{invitation_id}",
        &[404],
    ),
    // Sessions are for people: a token is refused (`session_required`).
    ("DELETE /v1/session", &[403]),
    ("GET /v1/me", &[403]),
    ("POST /v1/me/password", &[403]),
    ("GET /v1/sessions", &[403]),
    ("DELETE /v1/sessions/{id}", &[403]),
    // No account has the fuzzer's email and password; later attempts are
    // limited.
    ("POST /v1/sessions", &[401, 429]),
    // Setting up needs an ssh target; the local one answers `target_not_ssh`.
    ("POST /v1/targets/{target}/setup", &[202, 422]),
    // A link's secret cannot be guessed.
    ("POST /v1/password-resets/{token}", &[404]),
    ("POST /v1/invitations/{token}/accept", &[404]),
    // No provider answers here (accounts without an endpoint point at a
    // closed loopback port): an account is refused, so none exists to read.
    ("POST /v1/cloud-accounts", &[422]),
    ("GET /v1/cloud-accounts/{account}", &[404]),
    ("DELETE /v1/cloud-accounts/{account}", &[404]),
    ("PATCH /v1/cloud-accounts/{account}", &[404]),
    // Without a server no server image is saved.
    ("DELETE /v1/server-images/{id}", &[404]),
    // Without an account no server is bought, so none exists to read.
    ("POST /v1/servers", &[404, 422]),
    ("GET /v1/servers/{server}", &[404]),
    ("DELETE /v1/servers/{server}", &[404]),
    ("GET /v1/cloud-accounts/{account}/orphans", &[404]),
    // Nor an install, whose server it would buy.
    ("POST /v1/installs", &[404, 422]),
    ("GET /v1/installs/{id}", &[404]),
    ("DELETE /v1/installs/{id}", &[404]),
    // A priced size in a region is rarely what random strings name.
    ("POST /v1/estimates", &[200, 422]),
    ("GET /v1/providers/{provider}", &[200, 404]),
    // Either answer is readiness doing its job (a busy shared broker can
    // take longer than its 2 s to accept a connection).
    ("GET /readyz", &[200, 503]),
    // The document itself: schemathesis reads it to start, never as a case.
    ("GET /openapi.json", &[]),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests live in the workspace")
        .to_path_buf()
}

/// `SLIPWAY_SCHEMATHESIS`, else the venv `scripts/test-tools.sh` makes.
fn schemathesis() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("SLIPWAY_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".slipway/schemathesis/bin/schemathesis"));
    anyhow::ensure!(
        path.exists(),
        "schemathesis is not installed at {}: run `scripts/test-tools.sh` (or set \
         SLIPWAY_SCHEMATHESIS)",
        path.display()
    );
    Ok(path)
}

/// `"METHOD /path"` → statuses answered to positive (schema-valid) cases,
/// from schemathesis' ndjson report.
fn positive_answers(report: &str) -> anyhow::Result<BTreeMap<String, BTreeSet<u16>>> {
    let mut answers: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for line in report.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        let recorder = &event["ScenarioFinished"]["recorder"];
        let Some(cases) = recorder["cases"].as_object() else {
            continue;
        };
        for (id, case) in cases {
            let value = &case["value"];
            if value["meta"]["generation"]["mode"] != "positive" {
                continue;
            }
            let status = recorder["interactions"][id]["response"]["status_code"].as_u64();
            if let (Some(method), Some(path), Some(status)) =
                (value["method"].as_str(), value["path"].as_str(), status)
            {
                answers
                    .entry(format!("{method} {path}"))
                    .or_default()
                    .insert(status as u16);
            }
        }
    }
    Ok(answers)
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_or_document_break() -> anyhow::Result<()> {
    let schemathesis = schemathesis()?;
    let fleet = crate::common::Fleet::start(crate::common::Options {
        build_workers: 0,
        provision_workers: 0,
        deploy_workers: 0,
        ..Default::default()
    })
    .await?;
    let reports = tempfile::tempdir()?;
    let ndjson = reports.path().join("run.ndjson");
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new(&schemathesis)
        .arg("--no-color")
        .arg("--config-file")
        .arg(workspace().join("tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", fleet.api_url))
        .args(["-H", &format!("Authorization: Bearer {}", fleet.token)])
        .args(["--max-examples", MAX_EXAMPLES, "--request-timeout", "10"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&ndjson)
        .current_dir(reports.path())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .find("SUMMARY")
        .map_or(stdout.as_ref(), |at| &stdout[at..]);
    println!("schemathesis ran {:.0?}:\n{summary}", started.elapsed());
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        fleet.logs()
    );

    let answers = positive_answers(&std::fs::read_to_string(&ndjson)?)?;
    let (_, document) = slipway_api::startup::api_routes().split_for_parts();
    let document = serde_json::to_value(document)?;
    let mut unexercised = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            let operation = format!("{} {path}", method.to_uppercase());
            let seen = answers.get(&operation).cloned().unwrap_or_default();
            let expected = NO_SUCCESS_HERE
                .iter()
                .find(|(name, _)| *name == operation)
                .map(|(_, statuses)| *statuses);
            let exercised = match expected {
                Some([]) => true,
                Some(statuses) => seen.iter().any(|s| statuses.contains(s)),
                None => seen.iter().any(|s| (200..300).contains(s)),
            };
            if !exercised {
                unexercised.push(format!("{operation}: {seen:?}"));
            }
        }
    }
    assert!(
        unexercised.is_empty(),
        "operations never exercised with valid data (positive answers seen):\n{}",
        unexercised.join("\n")
    );
    Ok(())
}
