//! Keystone v3's token issue: a password or application credential in,
//! a token (`X-Subject-Token`) and the catalog of the fake's services out.

use super::*;

pub(super) fn login(shared: &Shared, body: &Value) -> Response {
    let identity = &body["auth"]["identity"];
    let password = &identity["password"]["user"];
    let credential = &identity["application_credential"];
    let (user, secret, project) = &shared.user;
    let by_password = password["name"] == user.as_str()
        && password["password"] == secret.as_str()
        && password["domain"]["name"].is_string()
        && body["auth"]["scope"]["project"]["id"] == project.as_str();
    let by_credential = credential["id"] == shared.app_credential.0.as_str()
        && credential["secret"] == shared.app_credential.1.as_str();
    if !(by_password || by_credential) {
        return unauthorized();
    }
    let base = shared.url.lock().unwrap().clone();
    let mut data = shared.data.lock().unwrap();
    let token = format!("gAAAA{}", uuid(&mut data).replace('-', ""));
    data.tokens.insert(token.clone());
    let endpoint = |kind: &str, url: String| {
        json!({"type": kind, "name": kind, "endpoints": [
        {"interface": "public", "region_id": shared.region, "region": shared.region, "url": url},
        {"interface": "internal", "region_id": shared.region, "region": shared.region, "url": "http://192.0.2.1/"}]})
    };
    let catalog = json!([
        endpoint("compute", format!("{base}/compute/v2.1")),
        endpoint("network", format!("{base}/network/")),
        endpoint("image", format!("{base}/image")),
    ]);
    let expires = (chrono_now_plus_hour()).to_string();
    let mut response = answer(
        StatusCode::CREATED,
        json!({"token": {"methods": ["password"], "expires_at": expires, "catalog": catalog}}),
    );
    response
        .headers_mut()
        .insert("x-subject-token", token.parse().unwrap());
    response
}

/// An RFC 3339 time an hour from now, without a date crate.
fn chrono_now_plus_hour() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600;
    let (days, rest) = (secs / 86400, secs % 86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
