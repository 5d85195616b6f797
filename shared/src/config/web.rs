//! Where `slipway-api` finds the dashboard's built assets.

use std::path::PathBuf;

/// The directory `npm run build` in `web/` writes (`web/dist`).
pub const DEFAULT_WEB_DIR: &str = "web/dist";

/// `SLIPWAY_WEB_DIR`: the dashboard's built assets (default `web/dist`,
/// relative to the API's working directory). A directory that is missing
/// or has no `index.html` is not an error at start: the API then answers
/// `/` with a page saying how to build the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub dir: PathBuf,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_WEB_DIR),
        }
    }
}

impl WebSettings {
    pub fn from_env() -> Self {
        super::raw("SLIPWAY_WEB_DIR").map_or_else(Self::default, |dir| Self {
            dir: PathBuf::from(dir.trim()),
        })
    }
}
