//! A local container's log read from its log file, woken by inotify: what
//! podman's API does for a followed log (it polls the file and its event
//! file every 250 ms for each follower, a cost per idle app) without any
//! work while the app prints nothing.
//!
//! The file is podman's `k8s-file` format, one piece a line:
//! `2026-12-05T20:19:47.102091836+00:00 stdout F text` (`P`: a partial
//! line, continued by the next piece of the same stream). conmon appends
//! to it across restarts of the container, and when it passes `max-size`
//! writes a new file and renames it over the old one: the reader reads the
//! old file to its end, then opens the new one from its start, so a
//! rotation loses nothing. The stream ends when the file is gone (the
//! container was removed); a container that stopped keeps its follower,
//! which goes on when it starts again.
//!
//! One inotify instance serves every follower of the worker
//! ([`FileWatch`]): a watch on each followed container's folder (the file
//! itself is replaced on rotation) wakes its reader.

use crate::engine::api::StampedLine;
use chrono::{DateTime, Utc};
use futures::Stream;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

/// A reader that was not woken looks again after this long anyway (an
/// event the kernel dropped on an overflowing queue).
const BACKSTOP: Duration = Duration::from_secs(30);
const CHUNK: usize = 64 * 1024;

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Per watch: the wake-up of its reader and how many readers share it (a
/// folder watched twice is one watch).
type Waiters = HashMap<WatchDescriptor, (Arc<Notify>, usize)>;

/// The worker's one inotify instance and who waits on each watch.
#[derive(Clone)]
pub struct FileWatch {
    inotify: Arc<AsyncFd<InotifyFd>>,
    waiters: Arc<Mutex<Waiters>>,
}

/// A watch on a followed container's folder; removed when dropped.
struct Watch {
    owner: FileWatch,
    wd: WatchDescriptor,
    wake: Arc<Notify>,
}

impl FileWatch {
    /// Makes the instance and the task that hands its events out; needs a
    /// tokio runtime.
    pub fn new() -> std::io::Result<FileWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // `AsyncFd::register` is the same with `unsafe`, which the
        // workspace forbids: its promise (the descriptor stays open and the
        // same while registered) holds, as `InotifyFd` owns it.
        #[allow(deprecated)]
        let inotify = AsyncFd::new(InotifyFd(inotify))?;
        let watch = FileWatch {
            inotify: Arc::new(inotify),
            waiters: Arc::default(),
        };
        tokio::spawn(watch.clone().dispatch());
        Ok(watch)
    }

    /// Wakes the reader of each watch an event names (a wake-up is kept
    /// for a reader not waiting yet, so none is lost).
    async fn dispatch(self) {
        loop {
            let Ok(mut ready) = self.inotify.readable().await else {
                return;
            };
            match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => {
                    let waiters = self.waiters.lock().expect("not poisoned");
                    for event in events {
                        if let Some((wake, _)) = waiters.get(&event.wd) {
                            wake.notify_one();
                        }
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "log files: cannot read inotify events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_would_block) => {}
            }
        }
    }

    fn watch(&self, folder: &Path) -> std::io::Result<Watch> {
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF;
        let wd = self.inotify.get_ref().0.add_watch(folder, flags)?;
        let mut waiters = self.waiters.lock().expect("not poisoned");
        let entry = waiters
            .entry(wd)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Ok(Watch {
            owner: self.clone(),
            wd,
            wake: entry.0.clone(),
        })
    }

    /// Every line of the log file at `path` from its start on, followed
    /// until the file is gone (see the module's text).
    pub fn follow(
        &self,
        path: PathBuf,
    ) -> std::io::Result<impl Stream<Item = anyhow::Result<StampedLine>> + Send + 'static> {
        let folder = path.parent().unwrap_or(Path::new("/")).to_owned();
        let watch = self.watch(&folder)?;
        let reader = Reader {
            path,
            file: None,
            inode: 0,
            raw: Vec::new(),
            pieces: HashMap::new(),
            lines: VecDeque::new(),
            watch,
        };
        Ok(futures::stream::unfold(reader, |mut reader| async move {
            match reader.next().await {
                Ok(Some(line)) => Some((Ok(line), reader)),
                Ok(None) => None,
                Err(error) => Some((Err(error), reader)),
            }
        }))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiters = self.owner.waiters.lock().expect("not poisoned");
        if let Some(entry) = waiters.get_mut(&self.wd) {
            entry.1 -= 1;
            if entry.1 == 0 {
                waiters.remove(&self.wd);
                // Already gone when its folder was removed.
                let _ = self.owner.inotify.get_ref().0.rm_watch(self.wd);
            }
        }
    }
}

struct Reader {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// The inode of the open file: another one at the path is a rotation.
    inode: u64,
    /// Bytes after the last whole line read.
    raw: Vec<u8>,
    /// A partial line's pieces so far, per stream.
    pieces: HashMap<&'static str, String>,
    lines: VecDeque<StampedLine>,
    watch: Watch,
}

impl Reader {
    /// The next whole line; `None` once the file is gone.
    async fn next(&mut self) -> anyhow::Result<Option<StampedLine>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(Some(line));
            }
            if self.file.is_none() {
                match tokio::fs::File::open(&self.path).await {
                    Ok(file) => {
                        self.inode = file.metadata().await?.ino();
                        self.file = Some(file);
                        self.raw.clear();
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(error) => return Err(error.into()),
                }
            }
            let file = self.file.as_mut().expect("opened above");
            let start = self.raw.len();
            self.raw.resize(start + CHUNK, 0);
            let read = file.read(&mut self.raw[start..]).await?;
            self.raw.truncate(start + read);
            if read > 0 {
                self.split();
                continue;
            }
            // At the end: a new file at the path (a rotation) is read
            // from its start; no file means the container is gone.
            match tokio::fs::metadata(&self.path).await {
                Ok(meta) if meta.ino() != self.inode => {
                    self.file = None;
                    continue;
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error.into()),
            }
            let _ = tokio::time::timeout(BACKSTOP, self.watch.wake.notified()).await;
        }
    }

    /// Moves the whole lines of `raw` to `lines`, joining partial pieces.
    fn split(&mut self) {
        let mut start = 0;
        while let Some(end) = self.raw[start..].iter().position(|b| *b == b'\n') {
            let raw = String::from_utf8_lossy(&self.raw[start..start + end]).into_owned();
            start += end + 1;
            let Some(piece) = parse_piece(&raw) else {
                continue;
            };
            let text = self.pieces.remove(piece.stream).unwrap_or_default() + piece.text;
            if piece.partial {
                self.pieces.insert(piece.stream, text);
            } else {
                self.lines.push_back(StampedLine {
                    at: piece.at,
                    stream: piece.stream,
                    line: text,
                });
            }
        }
        self.raw.drain(..start);
    }
}

/// One line of a `k8s-file` log.
#[derive(Debug, PartialEq, Eq)]
struct Piece<'a> {
    at: DateTime<Utc>,
    stream: &'static str,
    /// `P`: the line goes on in the next piece of the stream.
    partial: bool,
    text: &'a str,
}

fn parse_piece(raw: &str) -> Option<Piece<'_>> {
    let mut fields = raw.splitn(4, ' ');
    let at = DateTime::parse_from_rfc3339(fields.next()?)
        .ok()?
        .with_timezone(&Utc);
    let stream = match fields.next()? {
        "stderr" => "stderr",
        _ => "stdout",
    };
    let partial = fields.next()? == "P";
    Some(Piece {
        at,
        stream,
        partial,
        text: fields.next().unwrap_or(""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream::BoxStream;
    use futures::StreamExt;

    #[test]
    fn pieces_are_parsed() {
        let piece = parse_piece("2026-12-05T20:19:47.102091836+00:00 stderr P part").unwrap();
        assert_eq!(piece.stream, "stderr");
        assert!(piece.partial);
        assert_eq!(piece.text, "part");
        assert_eq!(piece.at.timestamp_subsec_nanos(), 102_091_836);
        let empty = parse_piece("2026-12-05T20:19:47.1+00:00 stdout F ").unwrap();
        assert_eq!((empty.partial, empty.text), (false, ""));
        assert!(parse_piece("garbage").is_none());
    }

    /// Lines appended later, a partial line, a rotation (a new file renamed
    /// over the old one) and the file's removal, on a real folder.
    #[tokio::test]
    async fn a_file_is_followed_across_a_rotation_until_it_is_gone() {
        let dir = std::env::temp_dir().join(format!("slipway-follow-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctr.log");
        let stamp = "2026-12-05T20:19:47.000000001+00:00";
        std::fs::write(&path, format!("{stamp} stdout F one\n{stamp} stdout P tw")).unwrap();
        let watch = FileWatch::new().unwrap();
        let mut lines = watch.follow(path.clone()).unwrap().boxed();
        async fn next(
            lines: &mut BoxStream<'static, anyhow::Result<StampedLine>>,
        ) -> Option<String> {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next()).await;
            line.expect("a line in time").map(|l| l.unwrap().line)
        }
        assert_eq!(next(&mut lines).await.as_deref(), Some("one"));
        let append = |text: &str| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        append(&format!("o\n{stamp} stdout F  three\n"));
        assert_eq!(next(&mut lines).await.as_deref(), Some("two three"));
        // conmon's rotation: a new file renamed over the old one, after a
        // last line in the old one.
        append(&format!("{stamp} stderr F four\n"));
        let rotated = dir.join("ctr.log.tmp");
        std::fs::write(&rotated, format!("{stamp} stdout F five\n")).unwrap();
        std::fs::rename(&rotated, &path).unwrap();
        assert_eq!(next(&mut lines).await.as_deref(), Some("four"));
        assert_eq!(next(&mut lines).await.as_deref(), Some("five"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(next(&mut lines).await, None);
    }
}
