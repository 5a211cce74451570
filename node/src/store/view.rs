//! A cached read of a project: the [`Project`] and its heads, kept beside the files
//! they were read from, so `reelmesh shots` (and `prompts`, `export`) on a large
//! project need not load the Automerge document when nothing changed.
//!
//! `<project>/view.cache` = magic | key (32 bytes) | payload BLAKE3 (32 bytes) |
//! payload (JSON of the project and its heads). The key is the BLAKE3 hash of this
//! format's version, reelmesh's version and the exact bytes of `snapshot.am` and
//! `changes.log`: any write to the project (a save, a compaction, a received
//! change) changes the key, so a stale view is never used, and a view written by
//! another reelmesh version is not either. The view is derived data: it is written
//! without fsync by whoever reads the project and finds it missing or stale, and a
//! torn or corrupt file (its payload hash fails) is read as missing. Callers hold
//! the data dir lock, like every other reader of the files.

use std::fs;
use std::path::Path;

use reelmesh_protocol::model::Project;
use serde::{Deserialize, Serialize};

use super::{ProjectStore, StoreError, io_err};

const MAGIC: &[u8; 8] = b"RMVIEW1\n";
const FILE: &str = "view.cache";

#[derive(Serialize, Deserialize)]
struct View {
    project: Project,
    heads: Vec<String>,
}

/// The key of a project's files as they are now.
fn key(dir: &Path) -> Result<[u8; 32], StoreError> {
    let snapshot_path = dir.join("snapshot.am");
    let snapshot = fs::read(&snapshot_path).map_err(io_err(&snapshot_path))?;
    let log = fs::read(dir.join("changes.log")).unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(MAGIC);
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(&(snapshot.len() as u64).to_le_bytes());
    hasher.update(&snapshot);
    hasher.update(&log);
    Ok(*hasher.finalize().as_bytes())
}

/// The cached view if it matches `key`.
fn cached(dir: &Path, key: &[u8; 32]) -> Option<View> {
    let bytes = fs::read(dir.join(FILE)).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (stored_key, rest) = rest.split_at_checked(32)?;
    let (payload_hash, payload) = rest.split_at_checked(32)?;
    if stored_key != key || blake3::hash(payload).as_bytes() != payload_hash {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// Write the view for `key` (temp file + rename; errors only cost the next read).
fn write_view(dir: &Path, key: &[u8; 32], view: &View) {
    let Ok(payload) = serde_json::to_vec(view) else {
        return;
    };
    let mut bytes = Vec::with_capacity(MAGIC.len() + 64 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
    bytes.extend_from_slice(&payload);
    let tmp = dir.join(format!("{FILE}.tmp-{}", std::process::id()));
    if fs::write(&tmp, &bytes).is_err() || fs::rename(&tmp, dir.join(FILE)).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// The project in `dir` and its heads: from the cached view when it is of exactly
/// these files, else read from the document (and cached). `Ok(None)` for a replica
/// still waiting for its first sync.
pub fn read(dir: &Path) -> Result<Option<(Project, Vec<String>)>, StoreError> {
    let key = key(dir)?;
    if let Some(view) = cached(dir, &key) {
        return Ok(Some((view.project, view.heads)));
    }
    let mut store = ProjectStore::open(dir)?;
    if !store.doc().is_ready() {
        return Ok(None);
    }
    let project = store.doc().project().map_err(|source| StoreError::Doc {
        path: dir.to_owned(),
        source: Box::new(source),
    })?;
    let view = View {
        project,
        heads: store.doc_mut().heads(),
    };
    drop(store);
    // Opening may have cut a torn log tail: key the view by the files as they are.
    let key = self::key(dir)?;
    write_view(dir, &key, &view);
    Ok(Some((view.project, view.heads)))
}

#[cfg(test)]
mod tests {
    use reelmesh_protocol::document::Position;
    use reelmesh_protocol::model::{Shot, ShotCode};

    use super::*;
    use crate::store::DataDir;

    #[test]
    fn a_view_is_used_only_for_the_files_it_was_read_from() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let mut store = data.create_project("뷰").unwrap();
        store
            .doc_mut()
            .add_shots(&[Shot::new(ShotCode(1), 24)], &Position::End)
            .unwrap();
        store.save().unwrap();
        let dir = store.dir().to_owned();
        let expected = store.doc().project().unwrap();
        let heads = store.doc_mut().heads();
        let (read_back, read_heads) = read(&dir).unwrap().unwrap();
        assert_eq!((&read_back, &read_heads), (&expected, &heads));
        assert!(dir.join(FILE).exists(), "the read was cached");
        // A cached view is served as written: prove it by planting a different
        // project under the same key.
        let key = key(&dir).unwrap();
        let mut planted = expected;
        planted.settings.name = "planted".into();
        write_view(
            &dir,
            &key,
            &View {
                project: planted,
                heads: heads.clone(),
            },
        );
        assert_eq!(read(&dir).unwrap().unwrap().0.settings.name, "planted");
        // Any write to the project changes the key: the view is read anew.
        store.doc_mut().set_name("새 이름").unwrap();
        store.save().unwrap();
        let (fresh, fresh_heads) = read(&dir).unwrap().unwrap();
        assert_eq!(fresh.settings.name, "새 이름");
        assert_ne!(fresh_heads, heads);
        // A torn or corrupt view reads as missing.
        let path = dir.join(FILE);
        let bytes = fs::read(&path).unwrap();
        for cut in [0, 8, 40, 72, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(read(&dir).unwrap().unwrap().0, fresh, "cut at {cut}");
        }
        let mut flipped = fs::read(&path).unwrap();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x20;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(read(&dir).unwrap().unwrap().0, fresh);
    }
}
