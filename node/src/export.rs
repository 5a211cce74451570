//! Export of projects (stub; being written).
use std::path::Path;

use reelmesh_protocol::model::Project;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

/// Write the project to `path`, format by extension (.json, .xlsx).
pub fn export_file(_project: &Project, path: &Path) -> Result<(), ExportError> {
    Err(ExportError(format!(
        "{}: export is not available yet",
        path.display()
    )))
}
