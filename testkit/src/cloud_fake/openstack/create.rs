//! A server create as Nova takes it: quota, flavor, image, key pair and
//! security groups checked, the address asked of the hook, `BUILD` recorded.

use super::*;

pub(super) async fn create_server(shared: &Shared, server: &Value) -> Response {
    let faults = shared.faults.lock().unwrap().clone();
    let (Some(name), Some(flavor), Some(image)) = (
        server["name"].as_str(),
        server["flavorRef"].as_str(),
        server["imageRef"].as_str(),
    ) else {
        return nova(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Invalid input for field/attribute server.",
        );
    };
    let (keys, snapshot, id) = {
        let mut data = shared.data.lock().unwrap();
        if faults.server_quota.is_some_and(|q| data.servers.len() >= q) {
            let used = data.servers.len();
            return nova(StatusCode::FORBIDDEN, "forbidden", &format!("Quota exceeded for instances: Requested 1, but already used {used} of {used} instances"));
        }
        if !FLAVORS.iter().any(|f| format!("flavor-{}", f.0) == flavor) {
            return nova(
                StatusCode::BAD_REQUEST,
                "badRequest",
                &format!("Flavor {flavor} could not be found."),
            );
        }
        let snapshot = match super::images::snapshot_of(&data, image) {
            Ok(snapshot) => snapshot,
            Err(refused) => return *refused,
        };
        let key = server["key_name"].as_str().unwrap_or_default();
        let Some(pair) = data.keypairs.get(key) else {
            return nova(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "Invalid key_name provided.",
            );
        };
        let keys = vec![pair["public_key"].as_str().unwrap_or_default().to_owned()];
        for group in server["security_groups"].as_array().into_iter().flatten() {
            if !data
                .groups
                .contains_key(group["name"].as_str().unwrap_or_default())
            {
                return nova(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    &format!("Security group {} not found.", group["name"]),
                );
            }
        }
        (keys, snapshot, uuid(&mut data))
    };
    let user_data = server["user_data"]
        .as_str()
        .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u).ok());
    let created = CreatedServer {
        id: id.clone(),
        name: name.to_owned(),
        ssh_keys: keys,
        user_data: String::from_utf8_lossy(&user_data.unwrap_or_default()).into_owned(),
        labels: server["metadata"].as_object().cloned().unwrap_or_default(),
        snapshot: snapshot.filter(|handle| !handle.is_empty()),
    };
    let ipv4 = (shared.hook)(created).await;
    let mut stored = server_json(
        &id,
        name,
        "BUILD",
        &ipv4.to_string(),
        server["metadata"].clone(),
    );
    stored["security_groups"] = server["security_groups"].clone();
    if let Some(words) = faults.fail_create {
        stored["pending_fault"] = json!({"code": 500, "message": words});
    }
    shared
        .data
        .lock()
        .unwrap()
        .servers
        .insert(id.clone(), (stored, FakeOpenStack::STEPS));
    if let Some(delay) = faults.create_answer_delay {
        tokio::time::sleep(delay).await;
    }
    answer(
        StatusCode::ACCEPTED,
        json!({"server": {"id": id, "links": [], "OS-DCF:diskConfig": "MANUAL", "adminPass": "fake-pass"}}),
    )
}
