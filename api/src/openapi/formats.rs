//! The rules of the request fields the handlers parse (`Slug`, `GitRef`,
//! `DomainName`, env keys, mount paths, runtime settings) as JSON Schema,
//! so a client (and the fuzzer) knows a valid value before sending it.
//! Documentation types only: the parsers in `slipway_shared` stay the
//! judges, and the fuzz test checks that what these allow is accepted.

#![allow(dead_code)]

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string schema with a pattern and a length limit, registered under
/// the type's name.
macro_rules! string_format {
    ($(#[doc = $doc:literal])+ $name:ident, $pattern:expr, $max:expr, $example:literal) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let description: Vec<&str> = vec![$($doc.trim()),+];
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .max_length(Some($max))
                    .examples([$example])
                    .description(Some(description.join(" ")))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

string_format!(
    /// A name: 1 to 63 characters of a-z, 0-9 and `-`, starting with a
    /// letter, not ending with `-`.
    Name,
    "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
    63,
    "web"
);

string_format!(
    /// A target's name or id.
    TargetKey,
    "^[a-z0-9][a-z0-9-]{0,62}$",
    63,
    "edge-1"
);

string_format!(
    /// A branch, tag or commit name (what `git check-ref-format` accepts;
    /// this pattern is a safe subset).
    GitRefName,
    "^[A-Za-z0-9_]+([./-][A-Za-z0-9_]+)*$",
    255,
    "main"
);

string_format!(
    /// A repository URL: `https://`, `http://`, `ssh://`, `git://`,
    /// `file://` or `user@host:path`, without spaces.
    GitUrl,
    "^((https?|ssh|git|file)://[!-~]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[!-~]+)$",
    2048,
    "https://git.example.com/acme/web.git"
);

string_format!(
    /// A lower-case host name of two labels or more (not an IP address).
    HostName,
    "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?\\.?$",
    253,
    "www.example.com"
);

string_format!(
    /// An absolute folder path: parts of letters, digits and `_ . -`, none
    /// of them `.` or `..`.
    MountPath,
    MOUNT,
    255,
    "/data"
);

const MOUNT: &str = "^/+(([A-Za-z0-9_-][A-Za-z0-9_.-]*|\\.[A-Za-z0-9_-][A-Za-z0-9_.-]*|\\.\\.[A-Za-z0-9_.-]+)/+)*([A-Za-z0-9_-][A-Za-z0-9_.-]*|\\.[A-Za-z0-9_-][A-Za-z0-9_.-]*|\\.\\.[A-Za-z0-9_.-]+)/*$";

/// Raw bytes (an archive).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for Binary {}

const ENV_KEY: &str = "^[A-Z_][A-Z0-9_]{0,127}$";
const ENV_VALUE: &str = "^[^\\u0000]*$";

fn env_map(nullable_values: bool) -> RefOr<Schema> {
    let value = ObjectBuilder::new()
        .schema_type(if nullable_values {
            utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
        } else {
            Type::String.into()
        })
        .pattern(Some(ENV_VALUE))
        // The server counts 32 KiB in bytes; no longer string fits.
        .max_length(Some(32 * 1024));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(ENV_KEY)),
        ))
        .additional_properties(Some(value))
        .description(Some(
            "Env vars: keys of A-Z, 0-9 and `_` not starting with a digit (a key may be in \
             `env` or `secrets`, not both); values without NUL bytes, at most 32 KiB",
        ))
        .into()
}

/// Env vars as created.
pub struct EnvVars;

impl PartialSchema for EnvVars {
    fn schema() -> RefOr<Schema> {
        env_map(false)
    }
}

impl ToSchema for EnvVars {}

/// Env vars in a PATCH: `null` deletes a key (the per-key merge PATCH is
/// moving to).
pub struct EnvPatch;

impl PartialSchema for EnvPatch {
    fn schema() -> RefOr<Schema> {
        env_map(true)
    }
}

impl ToSchema for EnvPatch {}

/// Runtime settings, checked when set; other keys answer 422
/// `invalid_runtime_settings`. (Deserialize only for `deny_unknown_fields`,
/// which makes the schema say `additionalProperties: false`.)
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RuntimeSettings {
    /// The port the app listens on in its container: 1024 or above, since
    /// apps run as an unprivileged user.
    #[schema(minimum = 1024, maximum = 65535)]
    port: Option<u32>,
    /// The path of an HTTP health check; starts with `/`. Without it a
    /// release is healthy once it listens on its port and stays up for
    /// `health_settle_ms`.
    #[schema(pattern = "^/", example = "/healthz")]
    health_path: Option<String>,
    /// How long a listening app must stay up to count as healthy, at most
    /// 60000 (default 1000).
    #[schema(minimum = 0, maximum = 60000)]
    health_settle_ms: Option<u64>,
    // `uint64`, not the default `int64`: the server takes any u64.
    #[schema(minimum = 0, format = "uint64")]
    health_interval_ms: Option<u64>,
    #[schema(minimum = 0, format = "uint64")]
    health_timeout_ms: Option<u64>,
    #[schema(minimum = 0, format = "uint64")]
    health_attempts: Option<u64>,
    /// Containers per release, 1 to 16.
    #[schema(minimum = 1, maximum = 16)]
    replicas: Option<u32>,
    /// How long an old release drains before it stops, at most 600000.
    #[schema(minimum = 0, maximum = 600000)]
    drain_ms: Option<u64>,
    /// A memory limit for the engine (`512m`).
    #[schema(schema_with = text_or_number)]
    memory: Option<String>,
    /// A CPU limit for the engine (`0.5`).
    #[schema(schema_with = text_or_number)]
    cpus: Option<String>,
}

/// Build settings, read by the build worker; other keys answer 422
/// `invalid_build_settings`. (Deserialize only for `deny_unknown_fields`,
/// as for [`RuntimeSettings`].)
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BuildSettings {
    /// The Containerfile to build, relative to the source's root.
    #[schema(example = "deploy/Dockerfile")]
    dockerfile: Option<String>,
    /// Build arguments, `NAME: value` (text, number or boolean).
    #[schema(value_type = Option<Object>)]
    build_env: Option<serde_json::Value>,
    /// Replaces the plan's dependency install (`npm ci`, `pip install …`).
    install_command: Option<String>,
    /// Replaces the plan's build step.
    command: Option<String>,
    /// Replaces the command the app is started with.
    start_command: Option<String>,
}

/// A setting given as text or as a number (`0.5`, `"0.5"`), or `null`.
fn text_or_number() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Null,
        ]))
        .into()
}
