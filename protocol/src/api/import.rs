//! What an import is asked and what it says: its options, and the report of how
//! every sheet and column was understood, what it added, updated and created, the
//! conflicts of a three-way import, and its problems (each naming sheet, row and
//! column). The node's importer fills them; the CLI, the control socket and the
//! editor show them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How to import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOptions {
    /// Understand and check the file, say what would change, write nothing.
    pub dry_run: bool,
    /// Refuse characters and looks that the shots name and nothing defines.
    pub strict: bool,
    /// In a three-way import, keep the project's value of a cell both sides changed.
    pub keep_project: bool,
    /// `HEADER=FIELD` mappings (`FIELD` may be `extra` or `skip`); remembered in the
    /// project when the import writes.
    pub maps: Vec<String>,
    /// Import a file reelmesh exported as a plain file: every cell is the truth.
    pub plain: bool,
}

/// Everything an import did, or (with `--dry-run`, or when it was refused) would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The file as given.
    pub file: String,
    /// Whether the project was changed (false for a dry run and a refused file).
    pub written: bool,
    /// Every sheet (or CSV table, or JSON list), in file order.
    pub sheets: Vec<SheetReport>,
    /// New shots.
    pub shots_added: usize,
    /// Existing shots that changed.
    pub shots_updated: usize,
    /// New characters (defined in the file, or only named by its shots).
    pub characters_added: usize,
    /// Existing characters that changed.
    pub characters_updated: usize,
    /// New cinematic options.
    pub cinematics_added: usize,
    /// Existing cinematic options that changed.
    pub cinematics_updated: usize,
    /// Every record added or changed, in file order (shots by code, the others by name).
    pub changes: Vec<RecordChange>,
    /// Characters the shots named and nothing defined, created by name.
    pub created_characters: Vec<String>,
    /// Cinematic options the shots named and nothing defined, created by name.
    pub created_cinematics: Vec<String>,
    /// The version the file was exported from, when the import compared against it.
    pub base: Option<BaseReport>,
    /// Cells that the file and the project both changed since the export.
    pub conflicts: Vec<Conflict>,
    /// One-line remarks: close matches, unknown headers, created records, formulas.
    pub notes: Vec<String>,
    /// Header mappings stored in the project by this import (`--map`).
    pub remembered: Vec<(String, String)>,
    /// Every problem; an import with any writes nothing.
    pub problems: Vec<CellError>,
}

/// A record an import adds or changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    /// `shots`, `characters` or `cinematic_options`.
    pub kind: String,
    /// `SHT-00003`, a character's or a look's name.
    pub record: String,
    /// `add`, `update`, or `create` (added because a shot names it).
    pub change: String,
}

/// How one sheet was understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetReport {
    /// Sheet name (CSV: the kind's label; JSON: the list's key).
    pub name: String,
    /// `shots`, `characters`, `cinematic_options`, `project`; none: not imported.
    pub kind: Option<String>,
    /// Data rows.
    pub rows: usize,
    /// Every column, in order.
    pub columns: Vec<ColumnReport>,
}

/// How one column was understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnReport {
    /// The header as written (or "Column F").
    pub header: String,
    /// The field it fills, `extra` or `skip`.
    pub reads_as: String,
    /// `named`, `--map`, `remembered`, `close match` or `unknown`.
    pub how: String,
    /// A remark (the name a close match was taken for, the nearest field...).
    pub note: Option<String>,
    /// Formula cells in the column.
    pub formulas: usize,
}

/// The three-way comparison's base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseReport {
    /// The project version (heads) the file was exported from.
    pub heads: Vec<String>,
    /// Cells the file changed since then (written unless in conflict and kept).
    pub changed_in_file: usize,
    /// Cells the project changed since then and the file did not (kept).
    pub kept_from_project: usize,
}

/// A cell both sides changed since the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The record: `SHT-00003`, a character's or a look's name.
    pub record: String,
    /// The field.
    pub field: String,
    /// The value when the file was exported.
    pub base: String,
    /// The file's value.
    pub file: String,
    /// The project's value now.
    pub project: String,
    /// `file` or `project`: the value the import kept.
    pub kept: String,
}

/// One bad cell: where it is, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellError {
    /// Sheet name (CSV: "Shots", "Characters" or "Cinematic Options"; JSON: the list).
    pub sheet: String,
    /// Spreadsheet row number, 1-based, the header being its own row (JSON: the
    /// entry number, 0 for the keys).
    pub row: usize,
    /// The column's header as written (JSON: the key).
    pub column: String,
    /// What is wrong, quoting the value.
    pub message: String,
    /// The place is a JSON entry and key rather than a row and column.
    #[serde(default)]
    pub entries: bool,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.entries, self.row) {
            (true, 0) => write!(f, "{}, key '{}': {}", self.sheet, self.column, self.message),
            (true, row) => write!(
                f,
                "{}, entry {row}, key '{}': {}",
                self.sheet, self.column, self.message
            ),
            (false, row) => write!(
                f,
                "{}, row {row}, column '{}': {}",
                self.sheet, self.column, self.message
            ),
        }
    }
}
