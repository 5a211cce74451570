//! Export of projects: JSON (`serde_json` of [`Project`], the lossless format) and an
//! xlsx workbook for people (sheets "Shots", "Characters", "Cinematic Options" and
//! "Project", English headers, bold header row).
//!
//! The workbook is made to read back: headers are the importer's own names
//! ([`crate::import::columns`]), shots name their characters and look by name, every
//! record carries a "Record ID" so a re-import keeps identity, and the Project sheet
//! carries the settings. "Duration (s)", "Timecode In" and "Timecode Out" are computed
//! for reading; the importer ignores the timecodes and checks the duration against the
//! frame count. Extra shot columns come back under their own headers.

mod xlsx;

use std::io::Write;
use std::path::Path;

use reelmesh_protocol::model::Project;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The format (from an extension or argument) is not one we write.
    #[error("unsupported export format '{0}' (use json or xlsx)")]
    Format(String),
    /// The workbook writer refused the data.
    #[error("writing the workbook: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// JSON serialization failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// Where we were writing.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Write the project to `path`, format by extension (.json, .xlsx). The file is
/// written to a temporary file in the same directory and renamed into place, so a
/// reader never sees half a file.
pub fn export_file(project: &Project, path: &Path) -> Result<(), ExportError> {
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let bytes = export_bytes(project, &format)?;
    let io = |source: std::io::Error| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".reelmesh-export-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(&bytes).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The project as bytes in `format` ("json" or "xlsx").
pub fn export_bytes(project: &Project, format: &str) -> Result<Vec<u8>, ExportError> {
    match format.trim_start_matches('.').to_ascii_lowercase().as_str() {
        "json" => {
            let mut bytes = serde_json::to_vec_pretty(project)?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        "xlsx" => Ok(xlsx::workbook(project)?),
        other => Err(ExportError::Format(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelmesh_protocol::document::ProjectDoc;

    #[test]
    fn unknown_formats_are_refused() {
        let project = ProjectDoc::create("p", "p").unwrap().project().unwrap();
        let err = export_bytes(&project, "pdf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported export format 'pdf' (use json or xlsx)"
        );
        let tmp = tempfile::tempdir().unwrap();
        assert!(export_file(&project, &tmp.path().join("out.txt")).is_err());
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "no temp file left"
        );
    }

    #[test]
    fn files_are_written_whole() {
        let project = ProjectDoc::create("프로젝트", "p")
            .unwrap()
            .project()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let json = tmp.path().join("p.json");
        export_file(&project, &json).unwrap();
        let back: Project = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(back, project);
        let xlsx = tmp.path().join("p.xlsx");
        export_file(&project, &xlsx).unwrap();
        assert!(std::fs::read(&xlsx).unwrap().starts_with(b"PK"));
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no temp file left"
        );
    }
}
