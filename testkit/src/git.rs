//! A test-owned git server: git daemon and smart HTTP with basic auth, on loopback.
