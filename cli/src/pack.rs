//! Packs a directory into a `.tar.gz` for `slipway deploy --dir`, the same
//! bytes for the same files: entries sorted by path, owner 0:0 with no
//! names, one fixed mtime, modes reduced to 0644/0755, and a gzip header
//! without a time or file name. The API stores versions by SHA-256 and the
//! build worker keys builds by the version's content, so an unchanged
//! directory reuses its earlier build. `.gitignore` (also outside a git
//! repository), `.git/info/exclude` and a `.slipwayignore` are honoured;
//! `.git` itself is never packed.

use crate::error::{CliError, Result};
use flate2::{Compression, GzBuilder};
use ignore::WalkBuilder;
use std::path::{Path, PathBuf};

/// 2000-01-01T00:00:00Z: any fixed time would do; zero upsets some tools.
const MTIME: u64 = 946_684_800;
/// The ignore file of Slipway's own, in `.gitignore` syntax.
pub const IGNORE_FILE: &str = ".slipwayignore";

pub struct Packed {
    pub bytes: Vec<u8>,
    pub files: usize,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

/// The files `dir` packs to, by relative path (sorted).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, Kind)>> {
    let mut walker = WalkBuilder::new(dir);
    walker
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(|entry| entry.file_name() != ".git");
    let mut out = Vec::new();
    for entry in walker.build() {
        let entry = entry.map_err(|e| CliError::local("unreadable_dir", e.to_string()))?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(dir) else {
            continue;
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let name = relative.to_str().ok_or_else(|| {
            CliError::local(
                "unsupported_path",
                format!("{}: file names must be UTF-8", relative.display()),
            )
        })?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| CliError::local("unreadable_dir", format!("{}: {e}", path.display())))?;
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| {
                CliError::local("unreadable_dir", format!("{}: {e}", path.display()))
            })?;
            Kind::Symlink(target)
        } else if meta.is_dir() {
            Kind::Dir
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            Kind::File {
                executable: meta.permissions().mode() & 0o100 != 0,
            }
        } else {
            continue; // sockets, fifos, devices: nothing an app is built from
        };
        out.push((name.replace('\\', "/"), path.to_path_buf(), kind));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

pub fn pack(dir: &Path) -> Result<Packed> {
    if !dir.is_dir() {
        return Err(CliError::local(
            "not_a_directory",
            format!("{} is not a directory", dir.display()),
        ));
    }
    let entries = entries(dir)?;
    let gzip = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let mut files = 0;
    let io = |e: std::io::Error| CliError::Other(anyhow::Error::new(e).context("packing"));
    for (name, path, kind) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{name}/"), std::io::empty())
                    .map_err(io)?;
            }
            Kind::File { executable } => {
                let bytes = std::fs::read(&path).map_err(io)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { 0o755 } else { 0o644 });
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, &name, bytes.as_slice())
                    .map_err(io)?;
                files += 1;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, &name, &target).map_err(io)?;
            }
        }
    }
    let bytes = tar.into_inner().and_then(|gz| gz.finish()).map_err(io)?;
    Ok(Packed { bytes, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn same_files_same_bytes_and_ignores_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "server.js", "x");
        write(d, "b/z.txt", "z");
        write(d, "b/a.txt", "a");
        write(d, ".gitignore", "node_modules/\n*.log\n");
        write(d, IGNORE_FILE, "secret.txt\n");
        write(d, "node_modules/m/index.js", "m");
        write(d, "debug.log", "l");
        write(d, "secret.txt", "s");
        write(d, ".git/HEAD", "ref");
        let first = pack(d).unwrap();
        assert_eq!(
            names(&first.bytes),
            [
                ".gitignore",
                IGNORE_FILE,
                "b/",
                "b/a.txt",
                "b/z.txt",
                "server.js"
            ]
        );
        // Touching files (new mtimes) changes nothing in the bytes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(d, "server.js", "x");
        assert_eq!(pack(d).unwrap().bytes, first.bytes);
        write(d, "server.js", "y");
        assert_ne!(pack(d).unwrap().bytes, first.bytes);
    }
}
