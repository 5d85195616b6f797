//! An app's `build` settings (`apps.build_settings`): the Dockerfile path,
//! build-time variables and the overrides of a generated plan's install,
//! build and start commands. The API checks them strictly when an app is
//! created or changed (`422 invalid_build_settings`, unknown keys included,
//! so a typo is not silently ignored); the build worker reads stored values
//! leniently, so a key written before the check existed does not fail a build.

use serde_json::Value;
use std::path::PathBuf;

/// The keys `build` may have.
pub const KNOWN_KEYS: [&str; 5] = [
    "dockerfile",
    "build_env",
    "install_command",
    "command",
    "start_command",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppBuildSettings {
    /// The app's Dockerfile, relative to the source root.
    pub dockerfile: Option<PathBuf>,
    /// Build-time variables, sorted by name.
    pub vars: Vec<(String, String)>,
    pub commands: CommandOverrides,
}

/// Commands that replace what a generated build plan would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOverrides {
    /// `build.install_command`: replaces the dependency install.
    pub install: Option<String>,
    /// `build.command`: replaces (or adds) the build step.
    pub build: Option<String>,
    /// `build.start_command`: replaces the start command.
    pub start: Option<String>,
}

impl AppBuildSettings {
    /// What the API accepts: [`AppBuildSettings::parse`] plus no unknown keys.
    pub fn parse_strict(value: &Value) -> Result<AppBuildSettings, String> {
        if let Some(map) = value.as_object() {
            if let Some(key) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "build.{key} is not a build setting (known: {})",
                    KNOWN_KEYS.join(", ")
                ));
            }
        }
        Self::parse(value)
    }

    /// Reads the known keys; anything else is ignored.
    pub fn parse(value: &Value) -> Result<AppBuildSettings, String> {
        let dockerfile = match value.get("dockerfile") {
            None | Some(Value::Null) => None,
            Some(Value::String(path)) => Some(PathBuf::from(path)),
            Some(other) => return Err(format!("build.dockerfile must be a path, not {other}")),
        };
        let mut vars = Vec::new();
        match value.get("build_env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => {
                            return Err(format!(
                                "build.build_env.{name} must be a string, not {other}"
                            ))
                        }
                    };
                    vars.push((name.clone(), value));
                }
            }
            Some(other) => {
                return Err(format!(
                    "build.build_env must be an object of NAME: value, not {other}"
                ))
            }
        }
        vars.sort();
        let command = |key: &str| -> Result<Option<String>, String> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(format!("build.{key} must not be empty"))
                }
                Some(Value::String(s)) if s.contains('\n') || s.contains('\0') => Err(format!(
                    "build.{key} must be one line (join commands with &&)"
                )),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(other) => Err(format!("build.{key} must be a command line, not {other}")),
            }
        };
        Ok(AppBuildSettings {
            dockerfile,
            vars,
            commands: CommandOverrides {
                install: command("install_command")?,
                build: command("command")?,
                start: command("start_command")?,
            },
        })
    }

    pub fn arg_names(&self) -> Vec<String> {
        self.vars.iter().map(|(name, _)| name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn build_settings_read_overrides_and_refuse_unknown_keys_when_strict() {
        let parsed = AppBuildSettings::parse_strict(&json!({
            "dockerfile": "deploy/Dockerfile",
            "build_env": {"B": "2", "A": 1},
            "install_command": "npm install",
            "command": "npm run compile",
            "start_command": "node dist/server.js",
        }))
        .unwrap_or_default();
        assert_eq!(
            parsed.vars,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(parsed.commands.install.as_deref(), Some("npm install"));
        assert_eq!(parsed.commands.build.as_deref(), Some("npm run compile"));
        assert_eq!(
            parsed.commands.start.as_deref(),
            Some("node dist/server.js")
        );

        let typo = json!({"build_command": "make"});
        let error = AppBuildSettings::parse_strict(&typo).unwrap_err();
        assert!(error.contains("build.build_command"), "{error}");
        // Stored values are read leniently.
        assert_eq!(
            AppBuildSettings::parse(&typo),
            Ok(AppBuildSettings::default())
        );

        for bad in [
            json!({"dockerfile": 3}),
            json!({"build_env": []}),
            json!({"build_env": {"A": {}}}),
            json!({"command": ""}),
            json!({"start_command": "a\nb"}),
            json!({"install_command": 7}),
        ] {
            assert!(AppBuildSettings::parse(&bad).is_err(), "{bad}");
        }
    }
}
