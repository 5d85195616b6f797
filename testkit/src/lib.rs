//! Test helpers for the Slipway workspace: fresh migrated databases on the
//! shared Postgres, test-owned RabbitMQ nodes and Postgres clusters that a
//! test may stop, crash and restart, spawned Slipway binaries, and polling
//! utilities.
//!
//! Everything a test starts binds 127.0.0.1 only and is torn down by `Drop`
//! (by pid or process group, never by name), because tests run in parallel
//! next to the system services and next to other people's tests.

pub mod caddy;
pub mod cloud_fake;
mod db;
pub mod dns;
pub mod dockerd;
pub mod git;
pub mod host;
pub mod netns;
mod os;
mod pg;
mod process;
mod rabbit;
pub mod registry;
mod util;

pub use db::{admin_database_url, fresh_database, fresh_database_on, TestDb};
pub use os::process_group_alive;
pub use pg::PgCluster;
pub use process::{bin_path, Proc};
pub use rabbit::RabbitNode;
pub use util::{free_port, rabbit_url, unique_prefix, wait_http_ok, wait_until};
