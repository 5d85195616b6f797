//! Cloud providers for Slipway: one [`driver::CloudDriver`] trait (servers
//! with an SSH key, user data, a firewall and labels; key pairs; firewalls;
//! asynchronous work polled to its end) with thin clients for Hetzner Cloud
//! and OpenStack on one HTTP and retry layer ([`http`]); the catalog of the
//! six providers Slipway prices ([`catalog`]); and the pure arithmetic of
//! estimates and per-project caps.
//!
//! A crate of its own rather than a module of `shared`: it brings an HTTP
//! client to the processes that talk to providers (the API and the
//! provision worker) without adding one to every worker that links `shared`.

pub mod driver;
pub mod error;
pub mod guard;
pub mod hetzner;
pub mod http;
pub mod openstack;

pub use driver::{CloudDriver, ProviderKind};
pub use error::CloudError;
pub mod account;
pub mod caps;
pub mod catalog;
