//! Export of projects: JSON (`serde_json` of [`Project`], the lossless format) and an
//! xlsx workbook for people (sheets "Shots", "Characters", "Cinematic Options" and
//! "Project", English headers, bold header row).
//!
//! The workbook is made to read back: headers are the importer's own names
//! ([`crate::import::columns`]), shots name their characters and look by name, every
//! record carries a "Record ID" so a re-import keeps identity, and the Project sheet
//! carries the settings. The Shots sheet is flat: every shot row has the twelve look
//! columns, holding the shot's own values (empty: the linked look's value shows
//! through), and a "Prompt" column with the assembled prompt for reading.
//! "Prompt", "Duration (s)", "Timecode In" and "Timecode Out" are computed for
//! reading; the importer ignores the prompt and the timecodes and checks the duration
//! against the frame count. Extra columns come back under their own headers.
//!
//! Both formats remember the project version they were made from (a hidden sheet
//! `_reelmesh`, or `exported_from` in the JSON), so re-importing the file changes only
//! the cells edited in it since ([`crate::import`]'s three-way comparison).

mod xlsx;

use std::io::Write;
use std::path::Path;

use reelmesh_protocol::model::Project;
use serde::Serialize;

use crate::import::ExportMark;

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
/// `mark`: the version the project was read at, remembered in the file.
pub fn export_file(
    project: &Project,
    path: &Path,
    mark: Option<&ExportMark>,
) -> Result<(), ExportError> {
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let bytes = export_bytes_marked(project, &format, mark)?;
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

/// The project as bytes in `format` ("json" or "xlsx"), remembering no version.
pub fn export_bytes(project: &Project, format: &str) -> Result<Vec<u8>, ExportError> {
    export_bytes_marked(project, format, None)
}

/// The JSON export: the project, and the version it was read at.
#[derive(Serialize)]
struct JsonExport<'a> {
    #[serde(flatten)]
    project: &'a Project,
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_from: Option<&'a ExportMark>,
}

/// The project as bytes in `format` ("json" or "xlsx"), remembering `mark`.
pub fn export_bytes_marked(
    project: &Project,
    format: &str,
    mark: Option<&ExportMark>,
) -> Result<Vec<u8>, ExportError> {
    match format.trim_start_matches('.').to_ascii_lowercase().as_str() {
        "json" => {
            let export = JsonExport {
                project,
                exported_from: mark,
            };
            let mut bytes = serde_json::to_vec_pretty(&export)?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        "xlsx" => Ok(xlsx::workbook(project, mark)?),
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
        assert!(export_file(&project, &tmp.path().join("out.txt"), None).is_err());
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
        export_file(&project, &json, None).unwrap();
        let back: Project = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(back, project);
        let xlsx = tmp.path().join("p.xlsx");
        export_file(&project, &xlsx, None).unwrap();
        assert!(std::fs::read(&xlsx).unwrap().starts_with(b"PK"));
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no temp file left"
        );
    }
}
