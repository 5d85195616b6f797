//! Snapshots as Nova and Glance keep them: Nova's `createImage` server
//! action (`202`, the image's URL in `Location`, no body before
//! microversion 2.45) saves the server as it is now (the hook commits the
//! test host); Glance lists it (`limit`/`marker`, a `next` path), shows it
//! `queued` → `saving` → `active` over [`FakeOpenStack::STEPS`] reads,
//! the create's metadata as its own properties, and deletes it (`204`).

use super::*;

/// Nova's `createImage` on server `id`.
pub(super) async fn create_image(shared: &Shared, id: &str, action: &Value) -> Response {
    let Some(name) = action["name"].as_str().filter(|n| !n.is_empty()) else {
        return nova(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Invalid input for field/attribute name.",
        );
    };
    let ip = {
        let data = shared.data.lock().unwrap();
        let Some((server, _)) = data.servers.get(id) else {
            return nova(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            );
        };
        if server["status"] != "ACTIVE" {
            return nova(
                StatusCode::CONFLICT,
                "conflictingRequest",
                &format!("Cannot 'createImage' instance {id} while it is in vm_state building"),
            );
        }
        server["addresses"]
            .as_object()
            .into_iter()
            .flat_map(|nets| nets.values())
            .flat_map(|list| list.as_array().into_iter().flatten())
            .find(|a| a["version"] == 4)
            .and_then(|a| a["addr"].as_str()?.parse::<std::net::Ipv4Addr>().ok())
    };
    let hook = shared.images.lock().unwrap().snapshot.clone();
    let handle = match (hook, ip) {
        (Some(hook), Some(ip)) => match hook(ip).await {
            Ok(handle) => handle,
            Err(words) => return nova(StatusCode::CONFLICT, "conflictingRequest", &words),
        },
        _ => String::new(),
    };
    let mut data = shared.data.lock().unwrap();
    let image_id = uuid(&mut data);
    let mut image = json!({"id": image_id, "name": name, "status": "queued", "visibility": "private",
        "size": null, "disk_format": "qcow2", "container_format": "bare", "min_disk": 25,
        "image_type": "snapshot", "instance_uuid": id, "created_at": "2026-12-05T12:00:00Z",
        "updated_at": "2026-12-05T12:00:00Z", "tags": [], "self": format!("/v2/images/{image_id}")});
    for (key, value) in action["metadata"].as_object().into_iter().flatten() {
        image[key] = value.clone();
    }
    data.images
        .insert(image_id.clone(), (image, FakeOpenStack::STEPS));
    data.snapshots.insert(image_id.clone(), handle);
    let base = shared.url.lock().unwrap().clone();
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(location) = format!("{base}/image/v2/images/{image_id}").parse() {
        response.headers_mut().insert("location", location);
    }
    response
}

/// Glance's image list: the distribution image and the snapshots, by id.
pub(super) fn list(data: &Data, query: &[(String, String)]) -> Response {
    let mut items: Vec<Value> = vec![json!({"id": IMAGE.0, "name": IMAGE.1, "status": "active"})];
    items.extend(data.images.values().map(|(i, _)| i.clone()));
    items.retain(|i| param(query, "name").is_none_or(|n| i["name"] == n));
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let limit: usize = param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .max(1);
    let start = param(query, "marker")
        .and_then(|m| items.iter().position(|i| i["id"] == m).map(|p| p + 1))
        .unwrap_or(0);
    let rest: Vec<Value> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let slice: Vec<Value> = rest.into_iter().take(limit).collect();
    let mut body = json!({"images": slice, "first": format!("/v2/images?limit={limit}"),
                          "schema": "/v2/schemas/images"});
    if more {
        let marker = slice
            .last()
            .and_then(|i| i["id"].as_str())
            .unwrap_or_default();
        body["next"] = json!(format!("/v2/images?limit={limit}&marker={marker}"));
    }
    answer(StatusCode::OK, body)
}

/// One image; a snapshot's read moves it on.
pub(super) fn show(data: &mut Data, id: &str) -> Response {
    if id == IMAGE.0 {
        return answer(
            StatusCode::OK,
            json!({"id": IMAGE.0, "name": IMAGE.1, "status": "active"}),
        );
    }
    match data.images.get_mut(id) {
        None => not_found(),
        Some((image, left)) => {
            if *left > 0 {
                *left -= 1;
                image["status"] = json!(if *left == 0 { "active" } else { "saving" });
                if *left == 0 {
                    image["size"] = json!(1_620_000_000u64);
                }
            }
            answer(StatusCode::OK, image.clone())
        }
    }
}

/// Glance's delete: `204`, and the saved test host goes.
pub(super) fn delete(shared: &Shared, data: &mut Data, id: &str) -> Response {
    if data.images.remove(id).is_none() {
        return not_found();
    }
    let handle = data.snapshots.remove(id).unwrap_or_default();
    if let Some(forget) = shared.images.lock().unwrap().forget.clone() {
        if !handle.is_empty() {
            forget(handle);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The snapshot a create names, when it is one (`Err`: not usable).
pub(super) fn snapshot_of(data: &Data, image: &str) -> Result<Option<String>, Box<Response>> {
    if image == IMAGE.0 {
        return Ok(None);
    }
    match data.images.get(image) {
        Some((found, _)) if found["status"] == "active" => {
            Ok(Some(data.snapshots.get(image).cloned().unwrap_or_default()))
        }
        Some(_) => Err(Box::new(nova(
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("Image {image} is not active."),
        ))),
        None => Err(Box::new(nova(
            StatusCode::BAD_REQUEST,
            "badRequest",
            &format!("Image {image} could not be found."),
        ))),
    }
}

fn not_found() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({"code": 404, "title": "Not Found", "message": "No image found"}),
    )
}
