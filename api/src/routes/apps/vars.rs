//! An app's environment: plain variables and sealed secrets in one table
//! (a key is one or the other). A create writes the whole set; a PATCH
//! merges per key, so a call that does not name a variable never loses it:
//! a value sets the key (moving it from secrets to env or back), `null`
//! deletes it from the side that names it, an absent key is kept.

use crate::error::ApiError;
use slipway_shared::secrets::SecretBox;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A PATCH's `env` or `secrets`: key → new value, or `None` to delete.
pub type VarPatch = BTreeMap<String, Option<String>>;

/// What a PATCH does to the variables, checked and split by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VarChanges {
    pub set_plain: BTreeMap<String, String>,
    pub set_secret: BTreeMap<String, String>,
    pub delete_plain: Vec<String>,
    pub delete_secret: Vec<String>,
}

impl VarChanges {
    /// Checks a PATCH's `env` and `secrets`. A key may be set on one side
    /// only; setting it on one side and deleting it on the other is a move.
    pub fn from_patch(
        env: Option<&VarPatch>,
        secrets: Option<&VarPatch>,
    ) -> Result<Self, ApiError> {
        let empty = VarPatch::new();
        let (env, secrets) = (env.unwrap_or(&empty), secrets.unwrap_or(&empty));
        let split = |patch: &VarPatch| {
            let mut set = BTreeMap::new();
            let mut delete = Vec::new();
            for (key, value) in patch {
                match value {
                    Some(value) => {
                        set.insert(key.clone(), value.clone());
                    }
                    None => delete.push(key.clone()),
                }
            }
            (set, delete)
        };
        let (set_plain, delete_plain) = split(env);
        let (set_secret, delete_secret) = split(secrets);
        validate(&set_plain, &set_secret)?;
        for key in delete_plain.iter().chain(&delete_secret) {
            check_key(key)?;
        }
        Ok(VarChanges {
            set_plain,
            set_secret,
            delete_plain,
            delete_secret,
        })
    }
}

/// Checks a create's (or a merge's) variables: valid names and values, no
/// key on both sides.
pub fn validate(
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if let Some(key) = env.keys().find(|k| secrets.contains_key(*k)) {
        return Err(ApiError::validation(format!(
            "`{key}` is in both env and secrets"
        )));
    }
    for (key, value) in env.iter().chain(secrets) {
        check_key(key)?;
        if value.len() > 32 * 1024 || value.contains('\0') {
            return Err(ApiError::validation(format!(
                "env: value of `{key}` is too long or has a NUL byte"
            )));
        }
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "env: `{key}` must be A-Z, 0-9 and _ and not start with a digit"
        )))
    }
}

/// Applies a PATCH's changes: deletes first, then upserts (a key set on
/// one side replaces whatever the app had under that name).
pub async fn apply(
    conn: &mut PgConnection,
    secret_box: &SecretBox,
    app_id: Uuid,
    changes: &VarChanges,
) -> Result<(), ApiError> {
    for (keys, secret) in [
        (&changes.delete_plain, false),
        (&changes.delete_secret, true),
    ] {
        if keys.is_empty() {
            continue;
        }
        sqlx::query("DELETE FROM app_env_vars WHERE app_id = $1 AND secret = $2 AND key = ANY($3)")
            .bind(app_id)
            .bind(secret)
            .bind(keys)
            .execute(&mut *conn)
            .await?;
    }
    upsert(
        conn,
        secret_box,
        app_id,
        &changes.set_plain,
        &changes.set_secret,
    )
    .await
}

/// Writes `env` and `secrets` over whatever the app has under those keys;
/// other keys are left alone.
pub async fn upsert(
    conn: &mut PgConnection,
    secret_box: &SecretBox,
    app_id: Uuid,
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if !env.is_empty() {
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        let values: Vec<&str> = env.values().map(String::as_str).collect();
        sqlx::query(
            "INSERT INTO app_env_vars (app_id, key, secret, value_plain)
             SELECT $1, k, false, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v)
             ON CONFLICT (app_id, key) DO UPDATE
                SET secret = false, value_plain = EXCLUDED.value_plain, value_sealed = NULL",
        )
        .bind(app_id)
        .bind(&keys)
        .bind(&values)
        .execute(&mut *conn)
        .await?;
    }
    if !secrets.is_empty() {
        let keys: Vec<&str> = secrets.keys().map(String::as_str).collect();
        let sealed: Vec<Vec<u8>> = secrets.values().map(|v| secret_box.seal(v)).collect();
        sqlx::query(
            "INSERT INTO app_env_vars (app_id, key, secret, value_sealed)
             SELECT $1, k, true, v FROM UNNEST($2::text[], $3::bytea[]) AS t(k, v)
             ON CONFLICT (app_id, key) DO UPDATE
                SET secret = true, value_sealed = EXCLUDED.value_sealed, value_plain = NULL",
        )
        .bind(app_id)
        .bind(&keys)
        .bind(&sealed)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(pairs: &[(&str, Option<&str>)]) -> VarPatch {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn a_patch_splits_into_sets_and_deletes_per_side() {
        let env = patch(&[("A", Some("1")), ("B", None)]);
        let secrets = patch(&[("C", Some("s")), ("D", None)]);
        let changes = VarChanges::from_patch(Some(&env), Some(&secrets)).unwrap();
        assert_eq!(changes.set_plain.get("A").map(String::as_str), Some("1"));
        assert_eq!(changes.delete_plain, vec!["B".to_string()]);
        assert_eq!(changes.set_secret.get("C").map(String::as_str), Some("s"));
        assert_eq!(changes.delete_secret, vec!["D".to_string()]);
    }

    #[test]
    fn a_move_between_sides_is_allowed_but_a_key_set_on_both_is_not() {
        let moved = VarChanges::from_patch(
            Some(&patch(&[("A", Some("plain"))])),
            Some(&patch(&[("A", None)])),
        );
        assert!(moved.is_ok());
        let both = VarChanges::from_patch(
            Some(&patch(&[("A", Some("1"))])),
            Some(&patch(&[("A", Some("2"))])),
        );
        assert!(both.is_err());
    }

    #[test]
    fn bad_names_are_refused_for_deletes_too() {
        assert!(VarChanges::from_patch(Some(&patch(&[("a-b", None)])), None).is_err());
        assert!(VarChanges::from_patch(None, Some(&patch(&[("1A", Some("x"))]))).is_err());
        assert_eq!(
            VarChanges::from_patch(None, None).unwrap(),
            VarChanges::default()
        );
    }
}
