//! A build that lost a race with the engine's local storage: an image or
//! layer it was about to reuse from the cache was removed meanwhile (a
//! concurrent prune of old images, another build's cleanup). Nothing is
//! wrong with the app, and the next attempt builds against the storage as
//! it is then, so it is retried rather than failed.

/// What buildah and podman print when a cached layer or image vanished
/// under them.
const VANISHED: &[&str] = &[
    "layer not known",
    "image not known",
    "identifier is not a layer",
    "identifier is not an image",
];

/// Whether a failed build's last lines show such a race (on an error line:
/// the words alone may be an app's own output).
pub fn lost(tail: &str) -> bool {
    super::tail::mentions(tail, VANISHED, Some("error"))
}

#[cfg(test)]
mod tests {
    use super::lost;

    #[test]
    fn vanished_layers_are_races_and_app_errors_are_not() {
        let table = [
            ("Error: checking if cached image exists from a previous build: getting top layer info: layer not known", true),
            ("Error: committing container for step {Env:[]}: image not known", true),
            ("error: npm ERR! missing script: build", false),
            ("ERROR: Could not find a version that satisfies the requirement flask==99", false),
            // The words without an error line are an app's own output.
            ("echo layer not known", false),
        ];
        for (tail, race) in table {
            assert_eq!(lost(tail), race, "{tail}");
        }
    }
}
