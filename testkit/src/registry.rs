//! A test-owned OCI registry (docker-registry) on a loopback port.
