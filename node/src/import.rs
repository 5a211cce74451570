//! Import of shot lists (stub; being written).
use std::path::Path;

use reelmesh_protocol::document::ProjectDoc;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// New shots.
    pub shots_added: usize,
    /// Existing shots updated (matched by shot code).
    pub shots_updated: usize,
    /// Characters created or updated.
    pub characters: usize,
    /// Cinematic options created or updated.
    pub cinematics: usize,
    /// Unknown headers kept as extra fields, as "sheet: header".
    pub kept_columns: Vec<String>,
}

/// Why an import changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Import a file into the project, by extension.
pub fn import_file(doc: &mut ProjectDoc, path: &Path) -> Result<ImportReport, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError(format!("{}: {e}", path.display())))?;
    import_bytes(doc, &bytes, &path.display().to_string())
}

/// Import bytes named `file_name` (its extension picks the format).
pub fn import_bytes(
    _doc: &mut ProjectDoc,
    _bytes: &[u8],
    file_name: &str,
) -> Result<ImportReport, ImportError> {
    Err(ImportError(format!(
        "{file_name}: import is not available yet"
    )))
}
