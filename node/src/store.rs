//! The data dir and the project store on disk.
//!
//! Layout:
//! ```text
//! <data dir>/config.json                       current project (temp + rename)
//! <data dir>/projects/<project_id>/snapshot.am  compacted document (temp + fsync + rename)
//! <data dir>/projects/<project_id>/changes.log  appended change chunks
//! <data dir>/blobs/<2 hex>/<blake3 hex>         media by content hash (see [`blobs`])
//! ```
//! Every edit appends one record `RMCH | u32 le length | blake3(bytes) | bytes` to
//! `changes.log` and fsyncs it before the edit is reported done (changes received
//! from peers are appended at once and fsynced in batches, see
//! [`ProjectStore::append`]). Opening replays
//! the log on top of the snapshot and stops at the first record that is cut short
//! or fails its hash (a crash mid-write); the torn tail is truncated away, so a crash
//! at any byte loses at most the write in flight. Compaction writes a new snapshot
//! to a temp file, fsyncs, renames it over the old one, fsyncs the directory and
//! only then empties the log; a crash in between replays changes Automerge already
//! has, which it ignores.

pub mod blobs;
pub mod direct;
pub mod view;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use reelmesh_protocol::document::{DocError, ProjectDoc};
use reelmesh_protocol::model::new_record_id;
use serde::{Deserialize, Serialize};

const RECORD_MAGIC: &[u8; 4] = b"RMCH";
const RECORD_HEADER: usize = 4 + 4 + 32;
/// The log is folded into the snapshot once it is larger than the snapshot and
/// at least this big: replaying a chunk costs more than loading a snapshot, so this
/// keeps a cold open close to a snapshot load without compacting on every edit.
const MIN_LOG_BEFORE_COMPACT: u64 = 64 * 1024;

/// Storage errors, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The document in a file is unreadable.
    #[error("{path}: {source}")]
    Doc {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<DocError>,
    },
    /// No project matches.
    #[error("{0}")]
    NoProject(String),
    /// Another process owns the data dir.
    #[error(
        "data dir {path} is in use by another reelmesh process ({holder}); stop it or use another --data-dir"
    )]
    Locked {
        /// The data dir.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
}

/// Exclusive ownership of a data dir, released when dropped (or when the process
/// dies: it is an OS file lock, so a crash never leaves a stale lock behind).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The data dir: `--data-dir`, else `REELMESH_DATA_DIR` (both via clap), else
/// `$XDG_DATA_HOME/reelmesh`, else `~/.local/share/reelmesh`.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("reelmesh");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/reelmesh"),
        None => PathBuf::from(".reelmesh"),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Config {
    current_project: Option<String>,
}

/// A data dir with its projects.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Use (and create) this data dir.
    pub fn open(root: &Path) -> Result<DataDir, StoreError> {
        fs::create_dir_all(root.join("projects")).map_err(io_err(root))?;
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    /// Where it is.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the data dir for this process, or say who has it.
    pub fn lock(&self) -> Result<DataDirLock, StoreError> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {
                let me = format!("pid {}", std::process::id());
                file.set_len(0).map_err(io_err(&path))?;
                file.write_all(me.as_bytes()).map_err(io_err(&path))?;
                Ok(DataDirLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(StoreError::Locked {
                    path: self.root.clone(),
                    holder: if holder.trim().is_empty() {
                        "starting up".to_owned()
                    } else {
                        holder.trim().to_owned()
                    },
                })
            }
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
        }
    }

    /// The project `init` or `join` made current, if any.
    #[must_use]
    pub fn current_project(&self) -> Option<String> {
        self.config().current_project
    }

    /// Make a project the current one.
    pub fn set_current_project(&self, project_id: &str) -> Result<(), StoreError> {
        self.set_current(project_id)
    }

    /// The id of the project `wanted` names (an id or a name; `None`: the current
    /// one, or the only one).
    pub fn resolve_project(&self, wanted: Option<&str>) -> Result<String, StoreError> {
        let ids = self.project_ids()?;
        Ok(match wanted {
            Some(wanted) if ids.iter().any(|id| id == wanted) => wanted.to_owned(),
            Some(wanted) => {
                let mut found = None;
                for id in &ids {
                    let named = view::read(&self.root.join("projects").join(id))?
                        .is_some_and(|(project, _)| project.settings.name == wanted);
                    if named {
                        found = Some(id.clone());
                        break;
                    }
                }
                found.ok_or_else(|| {
                    StoreError::NoProject(format!(
                        "no project named '{wanted}' in {}",
                        self.root.display()
                    ))
                })?
            }
            None => match self.config().current_project.filter(|id| ids.contains(id)) {
                Some(id) => id,
                None if ids.len() == 1 => ids[0].clone(),
                None => {
                    return Err(StoreError::NoProject(format!(
                        "no current project in {} (run `reelmesh init NAME` or pass --project)",
                        self.root.display()
                    )));
                }
            },
        })
    }

    /// Read a project and its heads without keeping it open: from its cached view
    /// when nothing changed since it was cached ([`view`]). Returns its id too.
    pub fn read_project(
        &self,
        wanted: Option<&str>,
    ) -> Result<(String, reelmesh_protocol::model::Project, Vec<String>), StoreError> {
        let project_id = self.resolve_project(wanted)?;
        match view::read(&self.root.join("projects").join(&project_id))? {
            Some((project, heads)) => Ok((project_id, project, heads)),
            None => Err(StoreError::NoProject(format!(
                "project {project_id} has not arrived from the mesh yet (start `reelmesh node` to sync it)"
            ))),
        }
    }

    /// Open every project here (replicas still waiting for their first sync too).
    pub fn open_all(&self) -> Result<Vec<(String, ProjectStore)>, StoreError> {
        self.project_ids()?
            .into_iter()
            .map(|id| {
                let store = ProjectStore::open(&self.root.join("projects").join(&id))?;
                Ok((id, store))
            })
            .collect()
    }

    /// Make an empty replica of a project known only by id (from an invite ticket);
    /// its content arrives by sync. Does nothing if the project is already here.
    pub fn add_replica(&self, project_id: &str) -> Result<(), StoreError> {
        reelmesh_protocol::wire::check_project_id(project_id)
            .map_err(|e| StoreError::NoProject(format!("bad project id in ticket: {e}")))?;
        let dir = self.root.join("projects").join(project_id);
        if !dir.join("snapshot.am").is_file() {
            ProjectStore::create(&dir, ProjectDoc::empty())?;
        }
        Ok(())
    }

    fn config(&self) -> Config {
        fs::read(self.root.join("config.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn set_current(&self, project_id: &str) -> Result<(), StoreError> {
        let config = Config {
            current_project: Some(project_id.to_owned()),
        };
        let bytes = serde_json::to_vec_pretty(&config).unwrap_or_default();
        write_atomic(&self.root.join("config.json"), &bytes)
    }

    /// Ids of every project here.
    pub fn project_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("projects");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if entry.path().join("snapshot.am").is_file() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Create a new project and make it current.
    pub fn create_project(&self, name: &str) -> Result<ProjectStore, StoreError> {
        let project_id = new_record_id();
        let dir = self.root.join("projects").join(&project_id);
        let doc = ProjectDoc::create(name, &project_id).map_err(|source| StoreError::Doc {
            path: dir.clone(),
            source: Box::new(source),
        })?;
        let store = ProjectStore::create(&dir, doc)?;
        self.set_current(&project_id)?;
        Ok(store)
    }

    /// Open a project by id or name; `None` opens the current one (or the only one).
    pub fn open_project(&self, wanted: Option<&str>) -> Result<ProjectStore, StoreError> {
        let project_id = self.resolve_project(wanted)?;
        let store = ProjectStore::open(&self.root.join("projects").join(&project_id))?;
        if !store.doc().is_ready() {
            return Err(StoreError::NoProject(format!(
                "project {project_id} has not arrived from the mesh yet (start `reelmesh node` to sync it)"
            )));
        }
        Ok(store)
    }
}

/// One project's document and its files. Call [`ProjectStore::save`] after edits.
#[derive(Debug)]
pub struct ProjectStore {
    dir: PathBuf,
    doc: ProjectDoc,
    log: File,
    log_len: u64,
    snapshot_len: u64,
    /// Records appended since the last fsync (see [`ProjectStore::append`]).
    unsynced: bool,
}

impl ProjectStore {
    pub(crate) fn create(dir: &Path, mut doc: ProjectDoc) -> Result<ProjectStore, StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot = doc.save();
        write_atomic(&dir.join("snapshot.am"), &snapshot)?;
        let log_path = dir.join("changes.log");
        let log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        Ok(ProjectStore {
            dir: dir.to_owned(),
            doc,
            log,
            log_len: 0,
            snapshot_len: snapshot.len() as u64,
            unsynced: false,
        })
    }

    /// Open a project folder: snapshot, then every intact log record.
    pub fn open(dir: &Path) -> Result<ProjectStore, StoreError> {
        let snapshot_path = dir.join("snapshot.am");
        let snapshot = fs::read(&snapshot_path).map_err(io_err(&snapshot_path))?;
        let mut doc = ProjectDoc::load_replica(&snapshot).map_err(|source| StoreError::Doc {
            path: snapshot_path.clone(),
            source: Box::new(source),
        })?;
        if !doc.is_ready() && !doc.heads().is_empty() {
            return Err(StoreError::Doc {
                path: snapshot_path,
                source: Box::new(DocError::Schema(
                    "not a reelmesh project (no schema version)".into(),
                )),
            });
        }
        let log_path = dir.join("changes.log");
        let mut bytes = Vec::new();
        if let Ok(mut file) = File::open(&log_path) {
            file.read_to_end(&mut bytes).map_err(io_err(&log_path))?;
        }
        let mut good = 0_usize;
        for (end, chunk) in LogRecords::new(&bytes) {
            if doc.load_incremental(chunk).is_err() {
                break;
            }
            good = end;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        if good < bytes.len() {
            // A torn tail from a crash mid-write: cut it so later appends stay readable.
            log.set_len(good as u64).map_err(io_err(&log_path))?;
            log.sync_all().map_err(io_err(&log_path))?;
        }
        Ok(ProjectStore {
            dir: dir.to_owned(),
            doc,
            log,
            log_len: good as u64,
            snapshot_len: snapshot.len() as u64,
            unsynced: false,
        })
    }

    /// The document.
    #[must_use]
    pub fn doc(&self) -> &ProjectDoc {
        &self.doc
    }

    /// The document, for edits (then call [`ProjectStore::save`]).
    pub fn doc_mut(&mut self) -> &mut ProjectDoc {
        &mut self.doc
    }

    /// The project folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make every edit so far durable: append and fsync one log record; compact when
    /// the log is large.
    pub fn save(&mut self) -> Result<(), StoreError> {
        self.append()?;
        self.sync()
    }

    /// Append every change so far as one log record without waiting for the disk:
    /// it is in the file (a crash of this process loses nothing), and durable
    /// against power loss at the next [`ProjectStore::sync`] or
    /// [`ProjectStore::save`]. For changes that peers also hold (received by
    /// sync): one fsync per batch instead of one per message.
    pub fn append(&mut self) -> Result<(), StoreError> {
        // A bulk add is saved as a snapshot without encoding its chunk first (the
        // chunk of 10,000 new shots is 7.2 MB, the snapshot 0.5 MB).
        if self.doc.unsaved_shots() >= BULK_EDIT_SHOTS {
            return self.compact();
        }
        let chunk = self.doc.save_incremental();
        if chunk.is_empty() {
            return Ok(());
        }
        // A record that would make the log outgrow the snapshot is folded into a new
        // snapshot instead of being written first.
        let record_len = (RECORD_HEADER + chunk.len()) as u64;
        if self.log_len + record_len > self.snapshot_len.max(MIN_LOG_BEFORE_COMPACT) {
            return self.compact();
        }
        let log_path = self.dir.join("changes.log");
        let len = u32::try_from(chunk.len()).map_err(|_| StoreError::Io {
            path: log_path.clone(),
            source: io::Error::other("change chunk over 4 GiB"),
        })?;
        let mut record = Vec::with_capacity(RECORD_HEADER + chunk.len());
        record.extend_from_slice(RECORD_MAGIC);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(blake3::hash(&chunk).as_bytes());
        record.extend_from_slice(&chunk);
        self.log.write_all(&record).map_err(io_err(&log_path))?;
        self.unsynced = true;
        self.log_len += record.len() as u64;
        Ok(())
    }

    /// A handle to fsync the records appended so far from another thread (`None`
    /// when there are none): the caller's own thread does not wait for the disk.
    /// The log counts as synced from here on; a later append makes it unsynced
    /// again, and [`sync`](Self::sync) then waits for the disk as before.
    pub fn sync_handle(&mut self) -> Result<Option<(File, PathBuf)>, StoreError> {
        if !self.unsynced {
            return Ok(None);
        }
        let log_path = self.dir.join("changes.log");
        let file = self.log.try_clone().map_err(io_err(&log_path))?;
        self.unsynced = false;
        Ok(Some((file, log_path)))
    }

    /// Wait for the disk to hold every record appended so far.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.unsynced {
            let log_path = self.dir.join("changes.log");
            self.log.sync_data().map_err(io_err(&log_path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Fold the log into a new snapshot (write temp, fsync, rename, then empty the log).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let snapshot = self.doc.save();
        write_atomic(&self.dir.join("snapshot.am"), &snapshot)?;
        self.snapshot_len = snapshot.len() as u64;
        let log_path = self.dir.join("changes.log");
        self.log.set_len(0).map_err(io_err(&log_path))?;
        self.log.sync_all().map_err(io_err(&log_path))?;
        self.log_len = 0;
        self.unsynced = false;
        Ok(())
    }
}

/// Shots added since the last save past which a save writes a snapshot directly.
const BULK_EDIT_SHOTS: usize = 1_000;

/// Iterates intact records of a change log as (end offset, chunk).
struct LogRecords<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> LogRecords<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LogRecords { bytes, at: 0 }
    }
}

impl<'a> Iterator for LogRecords<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.at..)?;
        let header = rest.get(..RECORD_HEADER)?;
        if &header[..4] != RECORD_MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let chunk = rest.get(RECORD_HEADER..RECORD_HEADER.checked_add(len)?)?;
        if blake3::hash(chunk).as_bytes() != &header[8..40] {
            return None;
        }
        self.at += RECORD_HEADER + len;
        Some((self.at, chunk))
    }
}

/// Write a file so that readers see the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Ok(handle) = File::open(dir) {
        handle.sync_all().map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use reelmesh_protocol::document::Position;
    use reelmesh_protocol::model::Shot;

    use super::*;

    fn store_with_edits(root: &Path, edits: usize) -> (PathBuf, Vec<u64>) {
        let data = DataDir::open(root).expect("data dir");
        let mut store = data.create_project("crash test").expect("create");
        let mut sizes = vec![0];
        for i in 0..edits {
            let code = store.doc().next_code().expect("code");
            let mut shot = Shot::new(code, 24);
            shot.action = format!("샷 {i}");
            store
                .doc_mut()
                .add_shots(&[shot], &Position::End)
                .expect("add");
            store.save().expect("save");
            sizes.push(
                fs::metadata(store.dir().join("changes.log"))
                    .expect("meta")
                    .len(),
            );
        }
        (store.dir().to_owned(), sizes)
    }

    #[test]
    fn a_bulk_edit_is_saved_as_a_snapshot_and_small_ones_as_log_records() {
        let tmp = tempfile::tempdir().expect("tmp");
        let data = DataDir::open(tmp.path()).expect("data dir");
        let mut store = data.create_project("bulk").expect("create");
        let shots: Vec<Shot> = (1..=BULK_EDIT_SHOTS as u64)
            .map(|i| Shot::new(reelmesh_protocol::model::ShotCode(i), 24))
            .collect();
        store
            .doc_mut()
            .add_shots(&shots, &Position::End)
            .expect("add");
        store.save().expect("save");
        let log = store.dir().join("changes.log");
        assert_eq!(fs::metadata(&log).expect("log").len(), 0, "no log record");
        let mut one = store.doc().project().expect("read").shots[0].clone();
        one.action = "small edit".into();
        store.doc_mut().update_shot(&one).expect("edit");
        store.save().expect("save");
        assert!(fs::metadata(&log).expect("log").len() > 0, "a log record");
        let dir = store.dir().to_owned();
        let expected = store.doc().project().expect("read");
        drop(store);
        let reopened = ProjectStore::open(&dir).expect("open");
        assert_eq!(reopened.doc().project().expect("read"), expected);
    }

    #[test]
    fn reopen_sees_every_saved_edit_and_compaction_keeps_them() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dir, _) = store_with_edits(tmp.path(), 5);
        let mut store = ProjectStore::open(&dir).expect("open");
        assert_eq!(store.doc().project().expect("read").shots.len(), 5);
        store.compact().expect("compact");
        assert_eq!(
            fs::metadata(dir.join("changes.log")).expect("meta").len(),
            0
        );
        let store = ProjectStore::open(&dir).expect("open");
        assert_eq!(store.doc().project().expect("read").shots.len(), 5);
    }

    #[test]
    fn a_log_cut_at_any_byte_loses_at_most_the_last_write() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dir, sizes) = store_with_edits(tmp.path(), 4);
        let full = fs::read(dir.join("changes.log")).expect("read");
        for cut in 0..=full.len() {
            fs::write(dir.join("changes.log"), &full[..cut]).expect("cut");
            let store = ProjectStore::open(&dir).expect("a cut log must still open");
            let complete = sizes.iter().filter(|&&end| end as usize <= cut).count() - 1;
            assert_eq!(
                store.doc().project().expect("read").shots.len(),
                complete,
                "cut at byte {cut}"
            );
            // The torn tail was removed, so the next save appends cleanly.
            assert_eq!(
                fs::metadata(dir.join("changes.log")).expect("meta").len(),
                sizes[complete]
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_log_stops_replay_there() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dir, sizes) = store_with_edits(tmp.path(), 3);
        let mut bytes = fs::read(dir.join("changes.log")).expect("read");
        let in_second = sizes[1] as usize + RECORD_HEADER + 1;
        bytes[in_second] ^= 0xff;
        fs::write(dir.join("changes.log"), &bytes).expect("write");
        let store = ProjectStore::open(&dir).expect("open");
        assert_eq!(store.doc().project().expect("read").shots.len(), 1);
    }

    #[test]
    fn a_crash_during_compaction_leaves_a_readable_project() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (dir, _) = store_with_edits(tmp.path(), 3);
        // Crash after writing part of the temp snapshot: the old snapshot + log stand.
        let mut store = ProjectStore::open(&dir).expect("open");
        let snapshot = store.doc_mut().save();
        fs::write(
            dir.join("snapshot.tmp-999"),
            &snapshot[..snapshot.len() / 2],
        )
        .expect("partial");
        let reopened = ProjectStore::open(&dir).expect("open");
        assert_eq!(reopened.doc().project().expect("read").shots.len(), 3);
        // Crash after the rename but before the log was emptied: changes replay twice.
        write_atomic(&dir.join("snapshot.am"), &snapshot).expect("rename");
        let reopened = ProjectStore::open(&dir).expect("open");
        assert_eq!(reopened.doc().project().expect("read").shots.len(), 3);
    }

    #[test]
    fn projects_are_found_by_name_id_or_current() {
        let tmp = tempfile::tempdir().expect("tmp");
        let data = DataDir::open(tmp.path()).expect("open");
        let first = data
            .create_project("첫 번째")
            .expect("create")
            .doc()
            .project()
            .expect("read")
            .project_id;
        let second = data
            .create_project("second")
            .expect("create")
            .doc()
            .project()
            .expect("read")
            .project_id;
        let id = |s: ProjectStore| s.doc().project().expect("read").project_id;
        assert_eq!(id(data.open_project(None).expect("current")), second);
        assert_eq!(
            id(data.open_project(Some("첫 번째")).expect("by name")),
            first
        );
        assert_eq!(id(data.open_project(Some(&first)).expect("by id")), first);
        assert!(data.open_project(Some("missing")).is_err());
    }
}
