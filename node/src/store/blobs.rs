//! The blob store: media (takes, inputs, previews) named by their BLAKE3 hash.
//!
//! Layout:
//! ```text
//! <data dir>/blobs/<first 2 hex>/<64 hex>   the bytes, read-only once visible
//! <data dir>/blobs/tmp/<random>             writes in progress
//! ```
//! A blob becomes visible only after its bytes were written to a temp file, hashed,
//! fsynced and renamed into place (and the folder fsynced), so a crash at any point
//! leaves either no blob or the whole verified blob, never a torn one. The same
//! bytes written twice are stored once. A name is always a parsed hash, never a path
//! from outside, so a peer's request cannot reach any other file.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reelmesh_protocol::blobtree;

use super::{StoreError, io_err};

/// A BLAKE3 hash naming a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// The hash of these bytes.
    #[must_use]
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    /// From the raw 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> BlobHash {
        BlobHash(bytes)
    }

    /// The raw 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for BlobHash {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{text}' is not a blob hash (64 hex digits)"));
        }
        blake3::Hash::from_hex(text.to_ascii_lowercase())
            .map(|h| BlobHash(*h.as_bytes()))
            .map_err(|e| format!("'{text}' is not a blob hash: {e}"))
    }
}

/// A blob's length and the chaining value of each 1 MiB piece.
pub type Outboard = (u64, Vec<[u8; 32]>);

/// A stored blob: its name and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// Its hash.
    pub hash: BlobHash,
    /// Its size in bytes.
    pub size: u64,
}

/// The blobs of one data dir.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Open (and make) `<data dir>/blobs`.
    pub fn open(data_dir: &Path) -> Result<BlobStore, StoreError> {
        let root = data_dir.join("blobs");
        for folder in ["tmp", "partial"] {
            let path = root.join(folder);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        Ok(BlobStore { root })
    }

    /// Where a blob's bytes live (whether or not it is there).
    #[must_use]
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether the blob is stored.
    #[must_use]
    pub fn has(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// Its size, if stored.
    #[must_use]
    pub fn size(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    /// Store bytes; returns their name. Storing bytes that are there already is a
    /// cheap no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let hash = BlobHash::of(bytes);
        let size = bytes.len() as u64;
        if self.size(&hash) == Some(size) {
            return Ok(BlobRef { hash, size });
        }
        let mut writer = self.writer()?;
        writer.write(bytes)?;
        let stored = writer.finish()?;
        Ok(stored)
    }

    /// A streaming writer for big blobs: bytes go to a temp file while being hashed;
    /// [`BlobWriter::finish`] makes the blob visible under its hash.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self
            .root
            .join("tmp")
            .join(reelmesh_protocol::model::new_record_id());
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            outboard: blobtree::OutboardWriter::default(),
            size: 0,
        })
    }

    /// All of a blob, verified against its name (a blob damaged on disk is an
    /// error, never returned).
    pub fn read(&self, hash: &BlobHash) -> Result<Vec<u8>, StoreError> {
        let path = self.path(hash);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        if BlobHash::of(&bytes) != *hash {
            return Err(StoreError::Io {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "blob does not match its hash"),
            });
        }
        Ok(bytes)
    }

    /// Append a byte range of a stored blob to `out` (a piece served to a peer,
    /// read straight into its answer frame).
    pub fn read_range_into(
        &self,
        hash: &BlobHash,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let path = self.path(hash);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
        out.reserve(len);
        file.take(len as u64)
            .read_to_end(out)
            .map_err(io_err(&path))?;
        Ok(())
    }

    /// The blob's length and piece chaining values (see
    /// [`reelmesh_protocol::blobtree`]), `None` when it is not here. Computed once
    /// (one read of the blob) and kept next to it in `<hash>.ob`.
    pub fn outboard(&self, hash: &BlobHash) -> Result<Option<Outboard>, StoreError> {
        let Some(len) = self.size(hash) else {
            return Ok(None);
        };
        let cache = self.path(hash).with_extension("ob");
        if let Ok(bytes) = fs::read(&cache)
            && bytes.len() >= 8
            && (bytes.len() - 8) % 32 == 0
        {
            let mut cached_len = [0_u8; 8];
            cached_len.copy_from_slice(&bytes[..8]);
            if u64::from_be_bytes(cached_len) == len {
                let cvs = bytes[8..]
                    .chunks_exact(32)
                    .map(|c| {
                        let mut cv = [0_u8; 32];
                        cv.copy_from_slice(c);
                        cv
                    })
                    .collect();
                return Ok(Some((len, cvs)));
            }
        }
        let path = self.path(hash);
        let mut cvs = Vec::new();
        if len > blobtree::CHUNK {
            let mut file = File::open(&path).map_err(io_err(&path))?;
            let mut piece = vec![0_u8; blobtree::CHUNK as usize];
            for index in 0..blobtree::chunk_count(len) {
                let want = blobtree::chunk_len(len, index) as usize;
                file.read_exact(&mut piece[..want]).map_err(io_err(&path))?;
                cvs.push(blobtree::chunk_cv(&piece[..want], index));
            }
        }
        self.save_outboard(hash, len, &cvs)?;
        Ok(Some((len, cvs)))
    }

    /// Keep a blob's outboard next to it (`<hash>.ob`: length, then the CVs).
    fn save_outboard(&self, hash: &BlobHash, len: u64, cvs: &[[u8; 32]]) -> Result<(), StoreError> {
        let mut bytes = len.to_be_bytes().to_vec();
        for cv in cvs {
            bytes.extend_from_slice(cv);
        }
        super::write_atomic(&self.path(hash).with_extension("ob"), &bytes)
    }

    /// Where a download of this blob keeps its pieces until it is whole.
    #[must_use]
    pub fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(hash.to_hex())
    }

    /// Make a finished, verified download visible under its hash (fsync, rename,
    /// fsync the folder).
    pub fn adopt_partial(
        &self,
        hash: &BlobHash,
        outboard: &[[u8; 32]],
    ) -> Result<BlobRef, StoreError> {
        let partial = self.partial_path(hash);
        let file = File::open(&partial).map_err(io_err(&partial))?;
        file.sync_all().map_err(io_err(&partial))?;
        let size = file.metadata().map_err(io_err(&partial))?.len();
        drop(file);
        let target = self.path(hash);
        let shard = target.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&shard).map_err(io_err(&shard))?;
        fs::rename(&partial, &target).map_err(io_err(&target))?;
        if let Ok(dir) = File::open(&shard) {
            dir.sync_all().map_err(io_err(&shard))?;
        }
        let _ = fs::remove_file(partial.with_extension("have"));
        // The verified outboard it came with: this node serves it at once.
        if let Err(e) = self.save_outboard(hash, size, outboard) {
            tracing::debug!(%hash, "keeping the outboard: {e}");
        }
        Ok(BlobRef { hash: *hash, size })
    }

    /// Every stored blob (for listing and tests).
    pub fn list(&self) -> Result<Vec<BlobRef>, StoreError> {
        let mut found = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(io_err(&self.root))?;
        for shard in entries.flatten() {
            let shard_path = shard.path();
            if !shard_path.is_dir() || shard.file_name() == "tmp" || shard.file_name() == "partial"
            {
                continue;
            }
            for entry in fs::read_dir(&shard_path)
                .map_err(io_err(&shard_path))?
                .flatten()
            {
                let name = entry.file_name();
                if let Some(hash) = name.to_str().and_then(|n| n.parse::<BlobHash>().ok()) {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    found.push(BlobRef { hash, size });
                }
            }
        }
        found.sort_by_key(|b| b.hash);
        Ok(found)
    }
}

/// A blob being written (see [`BlobStore::writer`]). Dropped without
/// [`BlobWriter::finish`], its temp file is removed and nothing becomes visible.
#[derive(Debug)]
pub struct BlobWriter {
    store: BlobStore,
    tmp: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    /// The piece CVs, as the bytes go by: a blob stored here is served without
    /// reading it back for its outboard.
    outboard: blobtree::OutboardWriter,
    size: u64,
}

impl BlobWriter {
    /// Append bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Io {
                path: self.tmp.clone(),
                source: io::Error::other("blob writer already finished"),
            });
        };
        file.write_all(bytes).map_err(io_err(&self.tmp))?;
        self.hasher.update(bytes);
        self.outboard.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The hash of what was written so far.
    #[must_use]
    pub fn hash(&self) -> BlobHash {
        BlobHash(*self.hasher.finalize().as_bytes())
    }

    /// fsync, rename into place, fsync the folder: the blob is now visible.
    pub fn finish(mut self) -> Result<BlobRef, StoreError> {
        let hash = self.hash();
        let size = self.size;
        let Some(file) = self.file.take() else {
            return Err(StoreError::Io {
                path: self.tmp.clone(),
                source: io::Error::other("blob writer already finished"),
            });
        };
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        let target = self.store.path(&hash);
        let shard = target.parent().unwrap_or(&self.store.root).to_path_buf();
        fs::create_dir_all(&shard).map_err(io_err(&shard))?;
        fs::rename(&self.tmp, &target).map_err(io_err(&target))?;
        if let Ok(dir) = File::open(&shard) {
            dir.sync_all().map_err(io_err(&shard))?;
        }
        // Only a cache: without it the outboard is computed on the first request.
        let cvs = std::mem::take(&mut self.outboard).finish();
        if let Err(e) = self.store.save_outboard(&hash, size, &cvs) {
            tracing::debug!(%hash, "keeping the outboard: {e}");
        }
        Ok(BlobRef { hash, size })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_stored_once_under_their_hash_and_read_back_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let bytes = "스토리보드 카드".repeat(1000).into_bytes();
        let first = store.put(&bytes).expect("put");
        let second = store.put(&bytes).expect("put again");
        assert_eq!(first, second);
        assert_eq!(
            first.hash.to_hex(),
            blake3::hash(&bytes).to_hex().to_string()
        );
        assert_eq!(store.read(&first.hash).expect("read"), bytes);
        let mut range = vec![0xff];
        store
            .read_range_into(&first.hash, 3, 6, &mut range)
            .expect("range");
        assert_eq!(range[0], 0xff, "appended after what was there");
        assert_eq!(range[1..], bytes[3..9]);
        assert_eq!(store.list().expect("list"), vec![first]);
    }

    #[test]
    fn a_damaged_blob_is_an_error_and_an_unfinished_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let stored = store.put(b"frame").expect("put");
        fs::write(store.path(&stored.hash), b"fraME").expect("damage");
        let err = store.read(&stored.hash).expect_err("damaged");
        assert!(err.to_string().contains("does not match its hash"), "{err}");

        let mut writer = store.writer().expect("writer");
        writer.write(b"half a video").expect("write");
        let hash = writer.hash();
        drop(writer);
        assert!(!store.has(&hash));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp"))
                .expect("tmp")
                .count(),
            0
        );
    }

    #[test]
    fn names_must_be_hashes_not_paths() {
        assert!("../../etc/passwd".parse::<BlobHash>().is_err());
        assert!("g".repeat(64).parse::<BlobHash>().is_err());
        let hash = BlobHash::of(b"x");
        assert_eq!(hash.to_hex().parse::<BlobHash>(), Ok(hash));
        assert_eq!(hash.to_hex().to_uppercase().parse::<BlobHash>(), Ok(hash));
    }
}
