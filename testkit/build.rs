//! Build script: `sqlx::migrate!` embeds the migration files at compile time but
//! stable Rust cannot tell cargo about the directory, so a migration added by
//! another crate's author would otherwise be silently missing until a clean build.

fn main() {
    // A directory path makes cargo rescan every file under it for changes.
    println!("cargo:rerun-if-changed=../migrations");
}
