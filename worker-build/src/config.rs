//! Build settings from the environment (registry, engine, base images, limits).
