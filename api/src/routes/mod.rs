//! One module per resource.

pub mod addons;
pub mod app_logs;
pub mod apps;
pub mod cloud_accounts;
pub mod cloud_caps;
pub mod dead_jobs;
pub mod deployments;
pub mod health;
pub mod hooks;
pub mod logs;
pub mod operations;
pub mod probes;
pub mod projects;
pub mod providers;
pub mod targets;
pub mod versions;
