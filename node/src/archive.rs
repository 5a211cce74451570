//! Project archives: one file holding a project's document and every blob it
//! refers to (takes, reference sheets, render inputs), with a manifest of BLAKE3
//! hashes, for handing a whole project over or keeping it.
//!
//! The file is a zip (stored, not compressed: takes are compressed media already):
//! `manifest.json` first (format, project id and name, and every other entry's
//! path, size and BLAKE3), then `project.automerge` (the document, whole history)
//! and `blobs/<hash>`. `verify` reads every entry and names each one that is
//! missing, extra or does not match; `open` verifies first, then creates the
//! project in a data dir that does not have it and puts every blob in the store.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use reelmesh_protocol::document::ProjectDoc;
use serde::{Deserialize, Serialize};

use crate::store::DataDir;
use crate::store::blobs::{BlobHash, BlobStore};

/// The manifest's format name.
pub const FORMAT: &str = "reelmesh-archive/1";
const MANIFEST: &str = "manifest.json";
const DOCUMENT: &str = "project.automerge";

/// What an archive says it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The project.
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// Every entry but the manifest.
    pub files: Vec<Entry>,
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path in the archive.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
}

/// What `create` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The manifest.
    pub manifest: Manifest,
    /// Blobs the project refers to that are not on this machine (not archived).
    pub missing: Vec<String>,
}

/// Every blob hash `doc` refers to: takes, reference sheets, render inputs.
fn referenced(doc: &ProjectDoc) -> Result<BTreeSet<String>> {
    let mut hashes = BTreeSet::new();
    for take in doc.takes().context("reading the takes")? {
        hashes.insert(take.blob);
    }
    for job in doc.jobs().context("reading the jobs")? {
        hashes.extend(job.inputs.into_values());
    }
    for character in doc.project().context("reading the project")?.characters {
        hashes.insert(character.reference_sheet);
    }
    hashes.retain(|h| h.parse::<BlobHash>().is_ok());
    Ok(hashes)
}

/// What an archive holds of a project: its id, name, the blobs it refers to, and
/// the whole document saved.
#[derive(Debug, Clone)]
pub struct Source {
    /// The project's id.
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// Every blob hash the document refers to.
    pub hashes: BTreeSet<String>,
    /// The document, saved.
    pub document: Vec<u8>,
}

/// The archive's view of `doc` (a running node's document, or one read from disk).
///
/// # Errors
/// A document that cannot be read.
pub fn source(doc: &mut ProjectDoc) -> Result<Source> {
    Ok(Source {
        project_id: doc.project_id().context("the project's id")?,
        name: doc.project().context("reading the project")?.settings.name,
        hashes: referenced(doc)?,
        document: doc.save(),
    })
}

/// Archive the project `wanted` (or the current one) of `data` into `out`.
///
/// # Errors
/// No such project, a file that cannot be written, a blob that cannot be read.
pub fn create(data: &DataDir, wanted: Option<&str>, out: &Path) -> Result<Created> {
    let mut store = data.open_project(wanted)?;
    let source = source(store.doc_mut())?;
    write(&source, &BlobStore::open(data.root())?, out)
}

/// Write `source` with every blob of it held in `blobs` to `out` (the ones not held
/// are listed in [`Created::missing`]).
///
/// # Errors
/// A file that cannot be written, a blob that cannot be read.
pub fn write(source: &Source, blobs: &BlobStore, out: &Path) -> Result<Created> {
    let Source {
        project_id,
        name,
        hashes,
        document,
    } = source;
    let (project_id, name) = (project_id.clone(), name.clone());
    let mut files = vec![Entry {
        path: DOCUMENT.into(),
        size: document.len() as u64,
        blake3: blake3::hash(document).to_hex().to_string(),
    }];
    let mut missing = Vec::new();
    let mut present = Vec::new();
    for hash in hashes {
        let parsed: BlobHash = hash
            .parse()
            .map_err(|_| anyhow::anyhow!("bad hash {hash}"))?;
        match blobs.size(&parsed) {
            Some(size) => {
                files.push(Entry {
                    path: format!("blobs/{hash}"),
                    size,
                    blake3: hash.clone(),
                });
                present.push(parsed);
            }
            None => missing.push(hash.clone()),
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        project_id,
        name,
        files,
    };
    // Written beside the target and renamed into place: a crash leaves no half file.
    let temp = out.with_extension("partial");
    let file =
        std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file(MANIFEST, stored)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    zip.start_file(DOCUMENT, stored)?;
    zip.write_all(document)?;
    for hash in present {
        zip.start_file(format!("blobs/{}", hash.to_hex()), stored)?;
        let bytes = blobs.read(&hash)?;
        zip.write_all(&bytes)?;
    }
    let writer = zip.finish()?;
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    file.sync_all()?;
    std::fs::rename(&temp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(Created { manifest, missing })
}

/// Why an archive does not check out: each problem names its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for problem in &self.0 {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Read every entry of `file` and check it against the manifest; the manifest and
/// the document bytes when all is well, else every problem found, each naming the
/// entry.
///
/// # Errors
/// Not a readable zip or no manifest (naming the file); [`Problems`] otherwise.
pub fn verify(file: &Path) -> Result<(Manifest, Vec<u8>), VerifyError> {
    let open = std::fs::File::open(file)
        .map_err(|e| VerifyError::Unreadable(format!("{}: {e}", file.display())))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(open))
        .map_err(|e| VerifyError::Unreadable(format!("{}: not an archive: {e}", file.display())))?;
    let manifest: Manifest = {
        let mut entry = zip
            .by_name(MANIFEST)
            .map_err(|_| VerifyError::Unreadable(format!("{}: no {MANIFEST}", file.display())))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| VerifyError::Unreadable(format!("{}: {MANIFEST}: {e}", file.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| VerifyError::Unreadable(format!("{}: {MANIFEST}: {e}", file.display())))?
    };
    if manifest.format != FORMAT {
        return Err(VerifyError::Unreadable(format!(
            "{}: format '{}', this reelmesh reads '{FORMAT}'",
            file.display(),
            manifest.format
        )));
    }
    let mut problems = Vec::new();
    let mut document = Vec::new();
    let listed: BTreeSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    for i in 0..zip.len() {
        let name = zip
            .by_index(i)
            .ok()
            .and_then(|e| e.name().ok().map(|n| n.into_owned()))
            .unwrap_or_default();
        if name != MANIFEST && !listed.contains(name.as_str()) {
            problems.push(format!("{name}: in the archive but not in the manifest"));
        }
    }
    for entry in &manifest.files {
        let mut bytes = Vec::new();
        match zip.by_name(&entry.path) {
            Ok(mut found) => {
                if let Err(e) = found.read_to_end(&mut bytes) {
                    problems.push(format!("{}: unreadable: {e}", entry.path));
                    continue;
                }
            }
            Err(_) => {
                problems.push(format!(
                    "{}: in the manifest but not in the archive",
                    entry.path
                ));
                continue;
            }
        }
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if hash != entry.blake3 || bytes.len() as u64 != entry.size {
            problems.push(format!(
                "{}: does not match the manifest (BLAKE3 {hash}, {} bytes; expected {}, {} bytes)",
                entry.path,
                bytes.len(),
                entry.blake3,
                entry.size
            ));
        } else if let Some(named) = entry.path.strip_prefix("blobs/")
            && named != hash
        {
            problems.push(format!(
                "{}: its name is not its BLAKE3 ({hash})",
                entry.path
            ));
        } else if entry.path == DOCUMENT {
            document = bytes;
        }
    }
    if problems.is_empty() {
        Ok((manifest, document))
    } else {
        Err(VerifyError::Problems(Problems(problems)))
    }
}

/// Why `verify` failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file is not an archive this can read.
    #[error("{0}")]
    Unreadable(String),
    /// Entries that do not check out, each named.
    #[error("the archive does not check out:\n{0}")]
    Problems(Problems),
}

/// Verify `file`, then create its project in `data` (which must not have it) with
/// every blob; the project becomes the current one. Returns its id and name.
///
/// # Errors
/// What `verify` finds; the project already here; a document that does not load.
pub fn open(data: &DataDir, file: &Path) -> Result<(String, String, usize)> {
    let (manifest, document) = verify(file)?;
    let doc = ProjectDoc::load(&document)
        .with_context(|| format!("{}: {DOCUMENT} is not a project document", file.display()))?;
    let id = doc.project_id().context("the document's project id")?;
    if id != manifest.project_id {
        bail!(
            "{}: the manifest names project {} but the document is {id}",
            file.display(),
            manifest.project_id
        );
    }
    if data.project_ids()?.contains(&id) {
        bail!(
            "project {id} ({}) is already in {}: open the archive in another data dir",
            manifest.name,
            data.root().display()
        );
    }
    let blobs = BlobStore::open(data.root())?;
    let open_file = std::fs::File::open(file)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(open_file))?;
    let mut count = 0;
    for entry in manifest
        .files
        .iter()
        .filter(|e| e.path.starts_with("blobs/"))
    {
        let mut bytes = Vec::new();
        zip.by_name(&entry.path)?.read_to_end(&mut bytes)?;
        blobs.put(&bytes)?;
        count += 1;
    }
    let dir: PathBuf = data.root().join("projects").join(&id);
    crate::store::ProjectStore::create(&dir, doc)?;
    data.set_current_project(&id)?;
    Ok((id, manifest.name, count))
}
