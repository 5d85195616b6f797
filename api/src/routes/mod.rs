//! One module per resource.

pub mod addons;
pub mod app_logs;
pub mod apps;
pub mod audit;
pub mod cloud_accounts;
pub mod cloud_caps;
pub mod dead_jobs;
pub mod deployments;
pub mod events;
pub mod health;
pub mod hooks;
pub mod invitations;
pub mod logs;
pub mod members;
pub mod operations;
pub mod probes;
pub mod projects;
pub mod providers;
pub mod sessions;
pub mod stats;
pub mod target_setup;
pub mod targets;
pub mod tokens;
pub mod users;
pub mod versions;
