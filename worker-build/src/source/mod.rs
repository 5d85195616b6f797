//! Fetching an app's source: git refs (shallow) and uploaded archives.

pub mod git;
