//! Why no plan could be made; every variant has a stable code for the API.

use slipway_shared::job::JobError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no build plan: looked for {looked_for} and found none")]
    NoBuildPlan { looked_for: String },
    #[error("the app's Dockerfile {path} does not exist in the source")]
    DockerfileNotFound { path: String },
    #[error("the Dockerfile path {path:?} is not allowed: {reason}")]
    InvalidDockerfilePath { path: String, reason: String },
    #[error("{file} is not valid: {reason}")]
    InvalidManifest { file: String, reason: String },
    #[error("no start command for this {stack} app: {hint}")]
    NoStartCommand { stack: &'static str, hint: String },
    #[error("{name:?} is not a valid build variable name (letters, digits and _, not starting with a digit)")]
    InvalidBuildArg { name: String },
    #[error("cannot read {path} in the source: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{language} {wanted} (from {declared_in}) is not available: this platform builds {language} apps with {}", available.join(", "))]
    UnsupportedRuntimeVersion {
        language: &'static str,
        wanted: String,
        declared_in: &'static str,
        available: Vec<String>,
    },
    #[error("build.{setting} does not apply to this {stack} build plan (it applies to generated Node, Python and Go plans{extra})")]
    OverrideNotApplicable {
        setting: &'static str,
        stack: &'static str,
        extra: &'static str,
    },
}

impl PlanError {
    /// The stable code the API shows.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::NoBuildPlan { .. } => "no_build_plan",
            PlanError::DockerfileNotFound { .. } => "dockerfile_not_found",
            PlanError::InvalidDockerfilePath { .. } => "invalid_dockerfile_path",
            PlanError::InvalidManifest { .. } => "invalid_manifest",
            PlanError::NoStartCommand { .. } => "no_start_command",
            PlanError::InvalidBuildArg { .. } => "invalid_build_arg",
            PlanError::Unreadable { .. } => "source_unreadable",
            PlanError::UnsupportedRuntimeVersion { .. } => "unsupported_runtime_version",
            PlanError::OverrideNotApplicable { .. } => "override_not_applicable",
        }
    }
}

/// A plan error is the source's fault: another attempt finds the same tree.
impl From<PlanError> for JobError {
    fn from(error: PlanError) -> Self {
        JobError::permanent(error.code(), error.to_string())
    }
}
