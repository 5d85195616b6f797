//! Building an image with buildah/podman and pushing it to a registry.
