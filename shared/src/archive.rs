//! Safe walking and unpacking of uploaded source archives (.tar.gz, .zip).
//!
//! The API walks an upload with [`inspect`] before it stores it, and the
//! build worker unpacks it with [`unpack`]; both run the same checks, so an
//! archive the API accepted cannot surprise the worker. Refused: absolute
//! paths, `..` components, symlinks whose target leaves the root (absolute
//! targets included), hard links to anything but an earlier regular file,
//! entries that go through or replace a symlink of the same archive (a
//! symlink to a shallower folder would otherwise turn a lexically harmless
//! `../x` of a later entry into an escape), devices, fifos and sockets.
//! Limits on the entry count and on the unpacked size bound zip and gzip
//! bombs: sizes are counted as bytes are read, not as headers claim.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How an archive is encoded, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    TarGz,
    Zip,
}

impl Format {
    /// Gzip starts with `1f 8b`; a zip with a local file header (`PK\3\4`)
    /// or, when empty, with its end record (`PK\5\6`).
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::Zip => "zip",
        }
    }

    pub fn parse(value: &str) -> Option<Format> {
        match value {
            "tar.gz" => Some(Format::TarGz),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries of any kind (files, folders, links).
    pub max_entries: u64,
    /// Bytes of file content once unpacked.
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_unpacked_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub format: Format,
    pub entries: u64,
    pub files: u64,
    pub unpacked_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    pub summary: Summary,
    /// Where the source starts: the single top-level folder when the archive
    /// holds exactly one (as `git archive --prefix` and forge downloads do),
    /// otherwise `dest` itself.
    pub root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("unsafe entry `{entry}`: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("not a readable .tar.gz or .zip archive: {0}")]
    Invalid(String),
    #[error("the archive unpacks beyond the limit: {0}")]
    TooLarge(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// The stable error code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::Unsafe { .. } => "archive_unsafe",
            ArchiveError::Invalid(_) => "archive_invalid",
            ArchiveError::TooLarge(_) => "archive_too_large",
            ArchiveError::Io { .. } => "archive_io",
        }
    }
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Unsafe {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// Walks the whole archive with every check and limit, writing nothing.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<Summary, ArchiveError> {
    walk(bytes, limits, &mut Discard)
}

/// Unpacks into `dest` (created if missing; should be empty) with the same
/// checks as [`inspect`]. On error, `dest` may hold a partial tree: the
/// caller owns the folder and removes it.
pub fn unpack(bytes: &[u8], dest: &Path, limits: &Limits) -> Result<Unpacked, ArchiveError> {
    std::fs::create_dir_all(dest).map_err(|source| ArchiveError::Io {
        path: dest.to_owned(),
        source,
    })?;
    let mut sink = Disk {
        dest: dest.to_owned(),
    };
    let mut tops = Tops::default();
    let summary = walk_with(bytes, limits, &mut sink, &mut tops)?;
    let root = match tops.single_dir() {
        Some(name) => dest.join(name),
        None => dest.to_owned(),
    };
    Ok(Unpacked { summary, root })
}

fn walk(bytes: &[u8], limits: &Limits, sink: &mut dyn Sink) -> Result<Summary, ArchiveError> {
    walk_with(bytes, limits, sink, &mut Tops::default())
}

fn walk_with(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut dyn Sink,
    tops: &mut Tops,
) -> Result<Summary, ArchiveError> {
    let format = Format::detect(bytes)
        .ok_or_else(|| ArchiveError::Invalid("the bytes are neither gzip nor zip".into()))?;
    let mut checker = Checker::new(limits, format);
    match format {
        Format::TarGz => tar_walk(bytes, &mut checker, sink)?,
        Format::Zip => zip_walk(bytes, &mut checker, sink)?,
    }
    if checker.summary.entries == 0 {
        return Err(ArchiveError::Invalid("the archive is empty".into()));
    }
    *tops = std::mem::take(&mut checker.tops);
    Ok(checker.summary)
}

/// What an entry is, once its type is known to be allowed.
enum Kind {
    Dir,
    File { executable: bool },
    Symlink(String),
    Hardlink(String),
}

/// Extended headers (long names, pax records) larger than this are refused:
/// the tar crate reads them whole into memory.
const MAX_EXTENSION_BYTES: u64 = 64 * 1024;

/// The decompressed tar stream is capped too, so a gzip bomb costs neither
/// memory nor minutes of CPU: content plus generous room for headers.
fn tar_stream_cap(limits: &Limits) -> u64 {
    limits
        .max_unpacked_bytes
        .saturating_add(
            limits
                .max_entries
                .saturating_mul(4 * 512 + MAX_EXTENSION_BYTES / 16),
        )
        .saturating_add(1 << 20)
}

/// A reader that fails once `left` bytes were read and more are offered.
struct Capped<R> {
    inner: R,
    left: u64,
    hit: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.hit.set(true);
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

type CappedTar<'a> = tar::Archive<Capped<flate2::read::GzDecoder<&'a [u8]>>>;

fn capped_tar<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> (CappedTar<'a>, std::rc::Rc<std::cell::Cell<bool>>) {
    let hit = std::rc::Rc::new(std::cell::Cell::new(false));
    let reader = Capped {
        inner: flate2::read::GzDecoder::new(bytes),
        left: tar_stream_cap(limits),
        hit: hit.clone(),
    };
    (tar::Archive::new(reader), hit)
}

fn tar_walk(bytes: &[u8], checker: &mut Checker, sink: &mut dyn Sink) -> Result<(), ArchiveError> {
    tar_extension_check(bytes, &checker.limits)?;
    let (mut archive, hit) = capped_tar(bytes, &checker.limits);
    tar_entries(&mut archive, checker, sink).map_err(|e| match e {
        ArchiveError::Invalid(_) if hit.get() => checker.stream_too_large(),
        other => other,
    })
}

/// A first pass over the raw headers, reading no extension into memory.
fn tar_extension_check(bytes: &[u8], limits: &Limits) -> Result<(), ArchiveError> {
    let (mut archive, hit) = capped_tar(bytes, limits);
    let invalid = |e: io::Error| {
        if hit.get() {
            ArchiveError::TooLarge("the decompressed tar stream is too large".into())
        } else {
            ArchiveError::Invalid(e.to_string())
        }
    };
    let entries = archive.entries().map_err(invalid)?.raw(true);
    let mut headers = 0u64;
    for entry in entries {
        let entry = entry.map_err(invalid)?;
        headers += 1;
        if headers > limits.max_entries.saturating_mul(4).saturating_add(4) {
            return Err(ArchiveError::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let kind = entry.header().entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if extension && entry.size() > MAX_EXTENSION_BYTES {
            return Err(ArchiveError::Invalid(format!(
                "an extended header of {} bytes (at most {MAX_EXTENSION_BYTES})",
                entry.size()
            )));
        }
    }
    Ok(())
}

fn tar_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    checker: &mut Checker,
    sink: &mut dyn Sink,
) -> Result<(), ArchiveError> {
    use tar::EntryType;
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        let name = utf8(&entry.path_bytes())?;
        let header = entry.header();
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File {
                executable: header.mode().unwrap_or(0o644) & 0o111 != 0,
            },
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink(utf8(&link_name(&entry, &name)?)?),
            EntryType::Link => Kind::Hardlink(utf8(&link_name(&entry, &name)?)?),
            // A pax global header only carries defaults for later entries.
            EntryType::XGlobalHeader => continue,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(unsafe_entry(&name, "devices and fifos are not allowed"))
            }
            other => {
                return Err(unsafe_entry(
                    &name,
                    format!("entry type {other:?} is not supported"),
                ))
            }
        };
        let claimed = entry.size();
        checker.entry(&name, kind, claimed, &mut entry, sink)?;
    }
    Ok(())
}

fn link_name<'a, R: Read>(
    entry: &'a tar::Entry<'_, R>,
    name: &str,
) -> Result<std::borrow::Cow<'a, [u8]>, ArchiveError> {
    entry
        .link_name_bytes()
        .ok_or_else(|| ArchiveError::Invalid(format!("link `{name}` has no target")))
}

fn utf8(bytes: &[u8]) -> Result<String, ArchiveError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ArchiveError::Invalid(format!(
            "a name is not UTF-8: {}",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn zip_walk(bytes: &[u8], checker: &mut Checker, sink: &mut dyn Sink) -> Result<(), ArchiveError> {
    let invalid = |e: zip::result::ZipError| ArchiveError::Invalid(e.to_string());
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(invalid)?;
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(invalid)?;
        // Zip names use `/`, but some Windows tools write `\`: read both as
        // separators so `..\..\x` is caught like `../../x`.
        let name = file.name().map_err(invalid)?.replace('\\', "/");
        if file.encrypted() {
            return Err(ArchiveError::Invalid(format!("`{name}` is encrypted")));
        }
        let mode = file.unix_mode().unwrap_or(0);
        let kind = match mode & 0o170000 {
            _ if file.is_dir() => Kind::Dir,
            0o120000 => {
                let mut target = String::new();
                (&mut file)
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| ArchiveError::Invalid(format!("`{name}`: {e}")))?;
                Kind::Symlink(target)
            }
            0o040000 => Kind::Dir,
            0 | 0o100000 => Kind::File {
                executable: mode & 0o111 != 0,
            },
            _ => {
                return Err(unsafe_entry(
                    &name,
                    "devices, fifos and sockets are not allowed",
                ))
            }
        };
        let claimed = file.size();
        checker.entry(&name, kind, claimed, &mut file, sink)?;
    }
    Ok(())
}

/// Splits a name into its normal components; refuses absolute paths and
/// `..`. An empty result is the archive's root (`./`).
fn components(entry: &str, path: &str) -> Result<Vec<String>, ArchiveError> {
    if path.contains('\0') {
        return Err(ArchiveError::Invalid(format!("`{entry}` has a NUL byte")));
    }
    if path.starts_with('/') {
        return Err(unsafe_entry(entry, "absolute paths are not allowed"));
    }
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_entry(entry, "`..` components are not allowed")),
            normal => out.push(normal.to_owned()),
        }
    }
    Ok(out)
}

/// The checks and limits, shared by every format and sink.
struct Checker {
    limits: Limits,
    summary: Summary,
    symlinks: HashSet<Vec<String>>,
    files: HashSet<Vec<String>>,
    tops: Tops,
}

impl Checker {
    fn new(limits: &Limits, format: Format) -> Self {
        Checker {
            limits: *limits,
            summary: Summary {
                format,
                entries: 0,
                files: 0,
                unpacked_bytes: 0,
            },
            symlinks: HashSet::new(),
            files: HashSet::new(),
            tops: Tops::default(),
        }
    }

    fn entry(
        &mut self,
        name: &str,
        kind: Kind,
        claimed: u64,
        content: &mut dyn Read,
        sink: &mut dyn Sink,
    ) -> Result<(), ArchiveError> {
        self.summary.entries += 1;
        if self.summary.entries > self.limits.max_entries {
            return Err(ArchiveError::TooLarge(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        let path = components(name, name)?;
        if path.is_empty() {
            return match kind {
                Kind::Dir => Ok(()),
                _ => Err(ArchiveError::Invalid(format!("`{name}` has no file name"))),
            };
        }
        if (1..path.len()).any(|n| self.symlinks.contains(&path[..n])) {
            return Err(unsafe_entry(name, "the path goes through a symlink"));
        }
        if self.symlinks.contains(&path) {
            return Err(unsafe_entry(name, "the entry replaces a symlink"));
        }
        self.tops
            .record(&path[0], path.len() > 1 || matches!(kind, Kind::Dir));
        match kind {
            Kind::Dir => sink.dir(&path),
            Kind::File { executable } => {
                let left = self.limits.max_unpacked_bytes - self.summary.unpacked_bytes;
                if claimed > left {
                    return Err(self.too_large());
                }
                // One byte past the allowance tells a lying header apart.
                let mut limited = content.take(left + 1);
                let written = sink.file(&path, executable, &mut limited, name)?;
                if written > left {
                    return Err(self.too_large());
                }
                self.summary.unpacked_bytes += written;
                self.summary.files += 1;
                self.files.insert(path);
                Ok(())
            }
            Kind::Symlink(target) => {
                check_symlink_target(name, &path, &target)?;
                sink.symlink(&path, &target)?;
                self.symlinks.insert(path);
                Ok(())
            }
            Kind::Hardlink(target) => {
                let target_path = components(name, &target)?;
                if !self.files.contains(&target_path) {
                    return Err(unsafe_entry(
                        name,
                        format!(
                            "hard link to `{target}`, which is not an earlier file of the archive"
                        ),
                    ));
                }
                sink.hardlink(&path, &target_path)?;
                self.summary.files += 1;
                self.files.insert(path);
                Ok(())
            }
        }
    }

    fn stream_too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge("the decompressed tar stream is too large".into())
    }

    fn too_large(&self) -> ArchiveError {
        ArchiveError::TooLarge(format!(
            "more than {} bytes of content",
            self.limits.max_unpacked_bytes
        ))
    }
}

/// A symlink's target is resolved from the folder holding the link and must
/// stay inside the root; absolute targets are refused outright.
fn check_symlink_target(name: &str, path: &[String], target: &str) -> Result<(), ArchiveError> {
    if target.is_empty() || target.contains('\0') {
        return Err(ArchiveError::Invalid(format!(
            "symlink `{name}` has an empty or NUL target"
        )));
    }
    if target.starts_with('/') {
        return Err(unsafe_entry(
            name,
            format!("symlink to the absolute path `{target}`"),
        ));
    }
    let mut resolved: Vec<&str> = path[..path.len() - 1].iter().map(String::as_str).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(unsafe_entry(
                        name,
                        format!("symlink to `{target}` leaves the archive"),
                    ));
                }
            }
            normal => resolved.push(normal),
        }
    }
    Ok(())
}

/// The top-level names, to find a single root folder.
#[derive(Default)]
struct Tops(HashMap<String, bool>);

impl Tops {
    fn record(&mut self, name: &str, is_dir: bool) {
        *self.0.entry(name.to_owned()).or_insert(is_dir) &= is_dir;
    }

    fn single_dir(&self) -> Option<&str> {
        match self.0.iter().next() {
            Some((name, true)) if self.0.len() == 1 => Some(name),
            _ => None,
        }
    }
}

/// Where checked entries go.
trait Sink {
    fn dir(&mut self, path: &[String]) -> Result<(), ArchiveError>;
    /// Returns the bytes copied.
    fn file(
        &mut self,
        path: &[String],
        executable: bool,
        content: &mut dyn Read,
        name: &str,
    ) -> Result<u64, ArchiveError>;
    fn symlink(&mut self, path: &[String], target: &str) -> Result<(), ArchiveError>;
    fn hardlink(&mut self, path: &[String], target: &[String]) -> Result<(), ArchiveError>;
}

/// Reads everything (so a corrupt or oversized stream is found) and keeps nothing.
struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _: &[String]) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn file(
        &mut self,
        _: &[String],
        _: bool,
        content: &mut dyn Read,
        name: &str,
    ) -> Result<u64, ArchiveError> {
        io::copy(content, &mut io::sink())
            .map_err(|e| ArchiveError::Invalid(format!("`{name}`: {e}")))
    }

    fn symlink(&mut self, _: &[String], _: &str) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn hardlink(&mut self, _: &[String], _: &[String]) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// Writes under `dest`, never following a symlink on the way: every parent
/// is checked to be a real folder (the checker already refuses such paths;
/// this is the second lock on the door).
struct Disk {
    dest: PathBuf,
}

impl Disk {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
        move |source| ArchiveError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Creates the parents of `path` and returns its full location; `None`
    /// for nothing on disk yet.
    fn prepare(
        &self,
        path: &[String],
    ) -> Result<(PathBuf, Option<std::fs::Metadata>), ArchiveError> {
        let mut at = self.dest.clone();
        for part in &path[..path.len() - 1] {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(unsafe_entry(
                        &path.join("/"),
                        "the path goes through a symlink",
                    ))
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(ArchiveError::Invalid(format!(
                        "`{}` needs a folder where the archive has a file",
                        path.join("/")
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&at).map_err(Self::io(&at))?
                }
                Err(e) => return Err(Self::io(&at)(e)),
            }
        }
        at.push(&path[path.len() - 1]);
        let existing = match std::fs::symlink_metadata(&at) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Self::io(&at)(e)),
        };
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(unsafe_entry(
                &path.join("/"),
                "the entry replaces a symlink",
            ));
        }
        Ok((at, existing))
    }

    fn duplicate(path: &[String]) -> ArchiveError {
        ArchiveError::Invalid(format!(
            "`{}` appears twice with different types",
            path.join("/")
        ))
    }
}

impl Sink for Disk {
    fn dir(&mut self, path: &[String]) -> Result<(), ArchiveError> {
        let (at, existing) = self.prepare(path)?;
        match existing {
            Some(meta) if meta.is_dir() => Ok(()),
            Some(_) => Err(Self::duplicate(path)),
            None => std::fs::create_dir(&at).map_err(Self::io(&at)),
        }
    }

    fn file(
        &mut self,
        path: &[String],
        executable: bool,
        content: &mut dyn Read,
        _name: &str,
    ) -> Result<u64, ArchiveError> {
        use std::os::unix::fs::OpenOptionsExt;
        let (at, existing) = self.prepare(path)?;
        match existing {
            // A later entry of the same name wins, as with `tar x`.
            Some(meta) if meta.is_file() => std::fs::remove_file(&at).map_err(Self::io(&at))?,
            Some(_) => return Err(Self::duplicate(path)),
            None => {}
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(&at)
            .map_err(Self::io(&at))?;
        io::copy(content, &mut out).map_err(Self::io(&at))
    }

    fn symlink(&mut self, path: &[String], target: &str) -> Result<(), ArchiveError> {
        let (at, existing) = self.prepare(path)?;
        if existing.is_some() {
            return Err(Self::duplicate(path));
        }
        std::os::unix::fs::symlink(target, &at).map_err(Self::io(&at))
    }

    fn hardlink(&mut self, path: &[String], target: &[String]) -> Result<(), ArchiveError> {
        let (at, existing) = self.prepare(path)?;
        if existing.is_some() {
            return Err(Self::duplicate(path));
        }
        let original: PathBuf = target.iter().fold(self.dest.clone(), |p, c| p.join(c));
        match std::fs::symlink_metadata(&original) {
            Ok(meta) if meta.is_file() => {}
            _ => {
                return Err(unsafe_entry(
                    &path.join("/"),
                    "hard link to something that is not a regular file",
                ))
            }
        }
        std::fs::hard_link(&original, &at).map_err(Self::io(&at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Exec(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Fifo(&'a str),
        Char(&'a str),
    }

    /// Writes names into the raw header fields, bypassing the tar crate's
    /// own path checks, as an attacker's tool would.
    fn tar_gz(entries: &[E]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = tar::Header::new_gnu();
            let (name, kind, data, link, mode): (&str, tar::EntryType, &[u8], &str, u32) =
                match entry {
                    E::File(n, d) => (n, tar::EntryType::Regular, d, "", 0o644),
                    E::Exec(n, d) => (n, tar::EntryType::Regular, d, "", 0o755),
                    E::Dir(n) => (n, tar::EntryType::Directory, b"", "", 0o755),
                    E::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", t, 0o777),
                    E::Hardlink(n, t) => (n, tar::EntryType::Link, b"", t, 0o644),
                    E::Fifo(n) => (n, tar::EntryType::Fifo, b"", "", 0o644),
                    E::Char(n) => (n, tar::EntryType::Char, b"", "", 0o644),
                };
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        gzip(&builder.into_inner().unwrap())
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn zip(entries: &[E]) -> Vec<u8> {
        use zip::write::SimpleFileOptions;
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default();
        for entry in entries {
            match entry {
                E::File(n, d) => {
                    writer.start_file(*n, options).unwrap();
                    writer.write_all(d).unwrap();
                }
                E::Exec(n, d) => {
                    writer
                        .start_file(*n, options.unix_permissions(0o755))
                        .unwrap();
                    writer.write_all(d).unwrap();
                }
                E::Dir(n) => writer.add_directory(*n, options).unwrap(),
                E::Symlink(n, t) => writer.add_symlink(*n, *t, options).unwrap(),
                _ => unreachable!("not used with zip"),
            }
        }
        writer.finish().unwrap().into_inner()
    }

    fn refused(bytes: &[u8]) -> ArchiveError {
        let err = inspect(bytes, &Limits::default()).expect_err("inspect must refuse");
        let dir = tempdir();
        let err2 =
            unpack(bytes, &dir.join("out"), &Limits::default()).expect_err("unpack must refuse");
        assert_eq!(err.code(), err2.code(), "{err} / {err2}");
        // Nothing may land beside the destination.
        let beside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("out")]);
        std::fs::remove_dir_all(&dir).unwrap();
        err
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slipway-archive-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn assert_unsafe(err: ArchiveError, entry: &str) {
        match &err {
            ArchiveError::Unsafe { entry: e, .. } => assert_eq!(e, entry, "{err}"),
            other => panic!("expected unsafe `{entry}`, got {other}"),
        }
    }

    #[test]
    fn formats_are_detected_by_magic_bytes() {
        assert_eq!(
            Format::detect(&tar_gz(&[E::Dir("a/")])),
            Some(Format::TarGz)
        );
        assert_eq!(Format::detect(&zip(&[E::Dir("a/")])), Some(Format::Zip));
        assert_eq!(Format::detect(b"hello"), None);
        assert_eq!(Format::parse(Format::Zip.as_str()), Some(Format::Zip));
    }

    #[test]
    fn a_good_tar_gz_unpacks_with_modes_and_inner_links() {
        let bytes = tar_gz(&[
            E::Dir("app/"),
            E::File("app/index.html", b"<h1>hi</h1>"),
            E::Exec("app/bin/run", b"#!/bin/sh\n"),
            E::Symlink("app/home.html", "index.html"),
            E::Symlink("app/bin/up", "../index.html"),
            E::Hardlink("app/copy.html", "app/index.html"),
        ]);
        let summary = inspect(&bytes, &Limits::default()).unwrap();
        assert_eq!(
            (summary.entries, summary.files, summary.unpacked_bytes),
            (6, 3, 21)
        );
        let dir = tempdir();
        let unpacked = unpack(&bytes, &dir, &Limits::default()).unwrap();
        assert_eq!(unpacked.summary, summary);
        assert_eq!(unpacked.root, dir.join("app"));
        assert_eq!(
            std::fs::read(dir.join("app/copy.html")).unwrap(),
            b"<h1>hi</h1>"
        );
        assert_eq!(
            std::fs::read(dir.join("app/bin/up")).unwrap(),
            b"<h1>hi</h1>"
        );
        assert_eq!(
            std::fs::read_link(dir.join("app/home.html")).unwrap(),
            Path::new("index.html")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode("app/bin/run"), mode("app/index.html")),
            (0o755, 0o644)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_good_zip_unpacks() {
        let bytes = zip(&[
            E::File("index.html", b"hello"),
            E::Exec("run.sh", b"#!/bin/sh\n"),
            E::Dir("static/"),
            E::Symlink("static/index.html", "../index.html"),
        ]);
        let dir = tempdir();
        let unpacked = unpack(&bytes, &dir, &Limits::default()).unwrap();
        assert_eq!(unpacked.root, dir, "two top-level names: no single root");
        assert_eq!(unpacked.summary.format, Format::Zip);
        assert_eq!(
            std::fs::read(dir.join("static/index.html")).unwrap(),
            b"hello"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        assert_unsafe(refused(&tar_gz(&[E::File("../evil", b"x")])), "../evil");
        assert_unsafe(
            refused(&tar_gz(&[E::File("a/../../evil", b"x")])),
            "a/../../evil",
        );
        assert_unsafe(refused(&tar_gz(&[E::File("/tmp/evil", b"x")])), "/tmp/evil");
        assert_unsafe(
            refused(&zip(&[E::File("../evil.txt", b"x")])),
            "../evil.txt",
        );
        assert_unsafe(
            refused(&zip(&[E::File("ok/..\\..\\evil", b"x")])),
            "ok/../../evil",
        );
        assert_unsafe(refused(&zip(&[E::File("/abs", b"x")])), "/abs");
    }

    #[test]
    fn links_out_of_the_root_are_refused() {
        assert_unsafe(refused(&tar_gz(&[E::Symlink("l", "../../etc")])), "l");
        assert_unsafe(refused(&tar_gz(&[E::Symlink("a/l", "../..")])), "a/l");
        assert_unsafe(refused(&tar_gz(&[E::Symlink("l", "/etc/passwd")])), "l");
        assert_unsafe(refused(&tar_gz(&[E::Hardlink("h", "/etc/passwd")])), "h");
        assert_unsafe(refused(&tar_gz(&[E::Hardlink("h", "../x")])), "h");
        assert_unsafe(refused(&tar_gz(&[E::Hardlink("h", "not-there")])), "h");
        assert_unsafe(refused(&zip(&[E::Symlink("l", "../outside")])), "l");
        assert_unsafe(refused(&zip(&[E::Symlink("l", "/etc")])), "l");
    }

    #[test]
    fn entries_through_or_over_a_symlink_are_refused() {
        // `d/a/l` points at the root (inside, so allowed), but a later entry
        // under it would resolve `../../x` from the root: out.
        assert_unsafe(
            refused(&tar_gz(&[
                E::Symlink("d/a/l", "../.."),
                E::Symlink("d/a/l/s", "../../x"),
            ])),
            "d/a/l/s",
        );
        assert_unsafe(
            refused(&tar_gz(&[E::Symlink("l", "."), E::File("l/f", b"x")])),
            "l/f",
        );
        assert_unsafe(
            refused(&tar_gz(&[E::Symlink("l", "f"), E::File("l", b"x")])),
            "l",
        );
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        assert_unsafe(refused(&tar_gz(&[E::Fifo("pipe")])), "pipe");
        assert_unsafe(refused(&tar_gz(&[E::Char("null")])), "null");
    }

    #[test]
    fn bombs_stop_at_the_limits() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let small = Limits {
            max_entries: 10,
            max_unpacked_bytes: 1024 * 1024,
        };
        for bytes in [
            tar_gz(&[E::File("z", &zeros)]),
            zip(&[E::File("z", &zeros)]),
        ] {
            assert!(bytes.len() < 200 * 1024, "compresses well: {}", bytes.len());
            let err = inspect(&bytes, &small).unwrap_err();
            assert_eq!(err.code(), "archive_too_large", "{err}");
            let dir = tempdir();
            assert_eq!(
                unpack(&bytes, &dir, &small).unwrap_err().code(),
                "archive_too_large"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let many: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let entries: Vec<E> = many.iter().map(|n| E::File(n, b"")).collect();
        assert_eq!(
            inspect(&tar_gz(&entries), &small).unwrap_err().code(),
            "archive_too_large"
        );
    }

    #[test]
    fn a_huge_extended_header_is_refused_unread() {
        // A GNU long name of 50 MiB of zeros: the tar crate would read it
        // whole into memory.
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(50 * 1024 * 1024);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append(&header, io::repeat(b'a').take(50 * 1024 * 1024))
            .unwrap();
        let bytes = gzip(&builder.into_inner().unwrap());
        assert!(bytes.len() < 1024 * 1024);
        let err = inspect(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "archive_invalid", "{err}");
    }

    #[test]
    fn a_lying_size_header_is_counted_by_what_is_read() {
        // A zip whose central directory claims 1 byte for 2 MiB of content.
        let mut bytes = zip(&[E::File("z", &vec![7u8; 2 * 1024 * 1024])]);
        let claimed = (2u32 * 1024 * 1024).to_le_bytes();
        let at: Vec<usize> = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == claimed)
            .map(|(i, _)| i)
            .collect();
        assert!(!at.is_empty());
        for i in at {
            bytes[i..i + 4].copy_from_slice(&1u32.to_le_bytes());
        }
        let small = Limits {
            max_entries: 10,
            max_unpacked_bytes: 1024 * 1024,
        };
        let err = inspect(&bytes, &small).unwrap_err();
        assert!(
            matches!(err.code(), "archive_too_large" | "archive_invalid"),
            "{err}"
        );
    }

    #[test]
    fn undecodable_input_is_invalid() {
        for bytes in [
            b"plain text".to_vec(),
            vec![0x1f, 0x8b, 0, 1, 2, 3],
            gzip(b"not a tar archive at all, just words"),
            tar_gz(&[])[..20].to_vec(),
            b"PK\x03\x04garbage".to_vec(),
            tar_gz(&[]),
        ] {
            assert_eq!(refused(&bytes).code(), "archive_invalid");
        }
    }
}
