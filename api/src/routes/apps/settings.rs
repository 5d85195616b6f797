//! A PATCH of an app's `build` or `runtime` settings merges per key: an
//! absent key is kept, `null` deletes it, a value replaces it. The merged
//! object is what gets validated and stored.

use serde_json::{Map, Value};

/// `current` (the stored settings, an object or nothing) with `patch`
/// applied.
pub fn merge(current: &Value, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = current.as_object().cloned().unwrap_or_default();
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_keys_are_kept_null_deletes_a_value_replaces() {
        let current = json!({"port": 3000, "replicas": 2, "health_path": "/up"});
        let patch = json!({"port": 8080, "health_path": null, "memory": "256m"});
        let merged = merge(&current, patch.as_object().unwrap());
        assert_eq!(
            Value::Object(merged),
            json!({"port": 8080, "replicas": 2, "memory": "256m"})
        );
    }

    #[test]
    fn nothing_stored_yet_is_an_empty_object() {
        let patch = json!({"replicas": 3, "gone": null});
        assert_eq!(
            Value::Object(merge(&Value::Null, patch.as_object().unwrap())),
            json!({"replicas": 3})
        );
    }
}
