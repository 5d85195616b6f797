//! The fake's writes and their progress: servers, keys and actions made,
//! actions moved on by reads; and the priced catalog it serves.

use super::*;

pub(super) fn price(monthly: &str, location: &str) -> Value {
    let net: f64 = monthly.parse().unwrap_or_default();
    let f = |v: f64| format!("{v:.10}");
    json!({"location": location,
        "price_hourly": {"net": f((net / 730.0 * 10000.0).round() / 10000.0), "gross": f((net * 1.19 / 730.0 * 10000.0).round() / 10000.0)},
        "price_monthly": {"net": f(net), "gross": f(net * 1.19)}})
}

pub(super) fn server_type(
    index: usize,
    (name, cores, memory, disk, arch, monthly): &(&str, u32, f64, u32, &str, &str),
) -> Value {
    // The Arm type is not offered in Helsinki, so "size not in region" is reachable.
    let prices: Vec<Value> = LOCATIONS
        .iter()
        .filter(|(l, _, _)| *arch != "arm" || *l != "hel1")
        .map(|(l, _, _)| price(monthly, l))
        .collect();
    json!({"id": index + 1, "name": name, "description": name.to_uppercase(), "cores": cores, "memory": memory,
        "disk": disk, "architecture": arch, "cpu_type": "shared", "deprecated": false, "storage_type": "local", "prices": prices})
}

pub(super) fn pricing() -> Value {
    let locations: Vec<&str> = LOCATIONS.iter().map(|(l, _, _)| *l).collect();
    json!({"pricing": {"currency": "EUR", "vat_rate": "19.00",
        "primary_ips": [{"type": "ipv4", "prices": locations.iter().map(|l| price("0.5000", l)).collect::<Vec<_>>()}],
        "server_backup": {"percentage": "20.00"},
        "server_types": SERVER_TYPES.iter().enumerate().map(|(i, t)| json!({"id": i + 1, "name": t.0, "prices": server_type(i, t)["prices"]})).collect::<Vec<_>>()}})
}

pub(super) fn new_action(
    data: &mut Data,
    command: &str,
    server: u64,
    end: Result<(), String>,
) -> Value {
    data.next_id += 1;
    let id = data.next_id;
    let action = json!({"id": id, "command": command, "status": "running", "progress": 0,
        "started": "2026-12-05T12:00:00+00:00", "finished": null,
        "resources": [{"id": server, "type": "server"}], "error": null});
    data.actions
        .insert(id, (action.clone(), FakeHetzner::STEPS, end));
    action
}

pub(super) fn read_action(shared: &Shared, id: u64) -> Response {
    let stuck = shared.faults.lock().unwrap().stuck_creating;
    let mut data = shared.data.lock().unwrap();
    let Some((action, left, end)) = data.actions.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "action not found");
    };
    let creating = action["command"] == "create_server";
    if action["status"] == "running" && !(stuck && creating) {
        *left = left.saturating_sub(1);
        action["progress"] = json!(100 - 50 * *left);
        if *left == 0 {
            action["finished"] = json!("2026-12-05T12:00:30+00:00");
            match end {
                Ok(()) => action["status"] = json!("success"),
                Err(words) => {
                    action["status"] = json!("error");
                    action["error"] = json!({"code": "action_failed", "message": words});
                }
            }
        }
    }
    let action = action.clone();
    if action["command"] == "create_image" && action["status"] != "running" {
        let image_id = action["resources"][1]["id"].as_u64().unwrap_or(0);
        if action["status"] == "success" {
            if let Some(image) = data.images.get_mut(&image_id) {
                image["status"] = json!("available");
                image["image_size"] = json!(1.62);
            }
        } else {
            data.images.remove(&image_id);
        }
    }
    if creating && action["status"] != "running" {
        let server_id = action["resources"][0]["id"].as_u64().unwrap_or(0);
        if let Some(server) = data.servers.get_mut(&server_id) {
            server["status"] = json!(if action["status"] == "success" {
                "running"
            } else {
                "off"
            });
        }
    }
    answer(StatusCode::OK, json!({"action": action}))
}

pub(super) fn create_key(shared: &Shared, body: Value) -> Response {
    let (Some(name), Some(public_key)) = (body["name"].as_str(), body["public_key"].as_str())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "invalid input in fields 'name', 'public_key'",
        );
    };
    if !public_key.starts_with("ssh-") && !public_key.starts_with("ecdsa-") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "invalid input in field 'public_key'",
        );
    }
    let mut data = shared.data.lock().unwrap();
    if data
        .keys
        .values()
        .any(|k| k["name"] == name || k["public_key"] == public_key)
    {
        return error(
            StatusCode::CONFLICT,
            "uniqueness_error",
            "SSH key with the same fingerprint already exists",
        );
    }
    data.next_id += 1;
    let id = data.next_id;
    let key = json!({"id": id, "name": name, "public_key": public_key, "labels": body["labels"],
        "fingerprint": format!("fa:ke:{:02x}", id % 256)});
    data.keys.insert(id, key.clone());
    answer(StatusCode::CREATED, json!({"ssh_key": key}))
}

pub(super) async fn create_server(shared: &Shared, body: Value) -> Response {
    let faults = shared.faults.lock().unwrap().clone();
    let (Some(name), Some(size), Some(location)) = (
        body["name"].as_str(),
        body["server_type"].as_str(),
        body["location"].as_str(),
    ) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "invalid input in fields 'name', 'server_type', 'location'",
        );
    };
    let (keys, snapshot, id) = {
        let mut data = shared.data.lock().unwrap();
        if data.servers.values().any(|s| s["name"] == name) {
            return error(
                StatusCode::CONFLICT,
                "uniqueness_error",
                "server name is already used",
            );
        }
        if faults.server_quota.is_some_and(|q| data.servers.len() >= q) {
            return error(
                StatusCode::FORBIDDEN,
                "resource_limit_exceeded",
                "server limit exceeded",
            );
        }
        if !SERVER_TYPES.iter().any(|t| t.0 == size) || !LOCATIONS.iter().any(|l| l.0 == location) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "unsupported server type or location",
            );
        }
        let mut keys = Vec::new();
        for wanted in body["ssh_keys"].as_array().into_iter().flatten() {
            match data
                .keys
                .values()
                .find(|k| k["id"] == *wanted || k["name"] == *wanted)
            {
                Some(key) => keys.push(key["public_key"].as_str().unwrap_or_default().to_owned()),
                None => return error(StatusCode::NOT_FOUND, "not_found", "SSH key not found"),
            }
        }
        // An image named by id is a snapshot of the account's; a name is
        // one of Hetzner's system images.
        let snapshot = match body["image"].as_str().and_then(|i| i.parse::<u64>().ok()) {
            None => None,
            Some(image) => match data.images.get(&image) {
                Some(found) if found["status"] == "available" => {
                    Some(data.snapshots.get(&image).cloned().unwrap_or_default())
                }
                Some(_) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_input",
                        "image is not available",
                    )
                }
                None => return error(StatusCode::NOT_FOUND, "not_found", "image not found"),
            },
        };
        data.next_id += 1;
        (keys, snapshot, data.next_id)
    };
    let created = CreatedServer {
        id: id.to_string(),
        name: name.to_owned(),
        ssh_keys: keys,
        user_data: body["user_data"].as_str().unwrap_or_default().to_owned(),
        labels: body["labels"].as_object().cloned().unwrap_or_default(),
        snapshot: snapshot.filter(|handle| !handle.is_empty()),
    };
    let ipv4 = (shared.hook)(created).await;
    let made = record_server(shared, &body, id, name, size, location, ipv4, &faults);
    let (server, action) = match made {
        Ok(made) => made,
        Err(refused) => return *refused,
    };
    if let Some(delay) = faults.create_answer_delay {
        tokio::time::sleep(delay).await;
    }
    answer(
        StatusCode::CREATED,
        json!({"server": server, "action": action, "next_actions": [], "root_password": null}),
    )
}

/// The new server stored, its firewalls applied, its create action begun.
#[allow(clippy::too_many_arguments)]
fn record_server(
    shared: &Shared,
    body: &Value,
    id: u64,
    name: &str,
    size: &str,
    location: &str,
    ipv4: std::net::Ipv4Addr,
    faults: &Faults,
) -> Result<(Value, Value), Box<Response>> {
    let mut data = shared.data.lock().unwrap();
    let mut server = server_json(
        id,
        name,
        "initializing",
        &ipv4.to_string(),
        size,
        location,
        body["labels"].clone(),
    );
    for wanted in body["firewalls"].as_array().into_iter().flatten() {
        let Some(firewall) = data
            .firewalls
            .get_mut(&wanted["firewall"].as_u64().unwrap_or(0))
        else {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "firewall not found",
            )));
        };
        if let Some(applied) = firewall["applied_to"].as_array_mut() {
            applied.push(json!({"type": "server", "server": {"id": id}}));
        }
        if let Some(list) = server["firewalls"].as_array_mut() {
            list.push(json!({"id": firewall["id"], "status": "applied"}));
        }
    }
    data.servers.insert(id, server.clone());
    let end = faults.fail_create.clone().map_or(Ok(()), Err);
    let action = new_action(&mut data, "create_server", id, end);
    Ok((server, action))
}

/// `POST /servers/{id}/actions/create_image`: the disk is saved as it is
/// now (the hook commits the test host), the image is `creating` until its
/// action ends.
pub(super) async fn create_image(shared: &Shared, server_id: u64, body: Value) -> Response {
    let kind = body["type"].as_str().unwrap_or("snapshot");
    if kind != "snapshot" && kind != "backup" {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "invalid input in field 'type'",
        );
    }
    let (ip, server_name) = {
        let data = shared.data.lock().unwrap();
        let Some(server) = data.servers.get(&server_id) else {
            return error(StatusCode::NOT_FOUND, "not_found", "server not found");
        };
        (
            server["public_net"]["ipv4"]["ip"]
                .as_str()
                .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok()),
            server["name"].clone(),
        )
    };
    let hook = shared.images.lock().unwrap().snapshot.clone();
    let handle = match (hook, ip) {
        (Some(hook), Some(ip)) => match hook(ip).await {
            Ok(handle) => handle,
            Err(words) => {
                return error(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("snapshot failed: {words}"),
                )
            }
        },
        _ => String::new(),
    };
    let mut data = shared.data.lock().unwrap();
    data.next_id += 1;
    let id = data.next_id;
    let image = json!({"id": id, "type": kind, "status": "creating", "name": null,
        "description": body["description"].as_str().unwrap_or_default(), "image_size": null,
        "disk_size": 40, "created": "2026-12-05T12:00:00+00:00",
        "created_from": {"id": server_id, "name": server_name}, "bound_to": null,
        "os_flavor": "debian", "os_version": null, "rapid_deploy": false,
        "protection": {"delete": false}, "deprecated": null, "deleted": null,
        "labels": body["labels"].as_object().cloned().unwrap_or_default(), "architecture": "x86"});
    data.images.insert(id, image.clone());
    data.snapshots.insert(id, handle);
    let action = new_action(&mut data, "create_image", server_id, Ok(()));
    let action_id = action["id"].as_u64().unwrap_or(0);
    let action = match data.actions.get_mut(&action_id) {
        Some((stored, _, _)) => {
            stored["resources"] =
                json!([{"id": server_id, "type": "server"}, {"id": id, "type": "image"}]);
            stored.clone()
        }
        None => action,
    };
    answer(
        StatusCode::CREATED,
        json!({"image": image, "action": action}),
    )
}

/// `GET /images/{id}`: a read moves its create action on, as a client
/// polling the image would see the provider work.
pub(super) fn read_image(shared: &Shared, id: u64) -> Response {
    let action = {
        let data = shared.data.lock().unwrap();
        data.actions
            .iter()
            .find(|(_, (a, _, _))| a["command"] == "create_image" && a["resources"][1]["id"] == id)
            .map(|(action_id, _)| *action_id)
    };
    if let Some(action) = action {
        read_action(shared, action);
    }
    match shared.data.lock().unwrap().images.get(&id) {
        Some(image) => answer(StatusCode::OK, json!({"image": image})),
        None => error(StatusCode::NOT_FOUND, "not_found", "image not found"),
    }
}

/// `DELETE /images/{id}`: 204, and its saved test host goes.
pub(super) fn delete_image(shared: &Shared, id: u64) -> Response {
    let handle = {
        let mut data = shared.data.lock().unwrap();
        if data.images.remove(&id).is_none() {
            return error(StatusCode::NOT_FOUND, "not_found", "image not found");
        }
        data.snapshots.remove(&id)
    };
    if let (Some(forget), Some(handle)) = (shared.images.lock().unwrap().forget.clone(), handle) {
        if !handle.is_empty() {
            forget(handle);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
