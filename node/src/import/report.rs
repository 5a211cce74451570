//! What an import says: how every sheet and column was understood, what it added,
//! updated and created, the conflicts of a three-way import, and its problems,
//! summarised so that ten thousand bad cells read as a few lines.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// How many problems are printed in full before the rest are counted by kind.
pub const PROBLEMS_IN_FULL: usize = 20;

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

/// "1 problem", "12,345 problems".
#[must_use]
pub fn count_problems(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{} problems", thousands(n))
    }
}

/// `12345` → "12,345".
#[must_use]
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The problems as a person reads them: the first [`PROBLEMS_IN_FULL`] in full,
/// then one line per kind (same sheet, column and message) with its count and first
/// row. `all`: every problem, one per line.
#[must_use]
pub fn summarize_problems(problems: &[CellError], all: bool) -> String {
    let mut out = String::new();
    let shown = if all {
        problems.len()
    } else {
        problems.len().min(PROBLEMS_IN_FULL)
    };
    for problem in &problems[..shown] {
        let _ = writeln!(out, "  {problem}");
    }
    if shown == problems.len() {
        return out;
    }
    // The rest, by kind: (sheet, column, message) in first-seen order.
    // (first seen, sheet, column, message) → (count, first row, JSON entries).
    type Kind<'a> = (usize, &'a str, &'a str, &'a str);
    let mut kinds: BTreeMap<Kind<'_>, (usize, usize, bool)> = BTreeMap::new();
    let mut first_seen: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for problem in &problems[shown..] {
        let key = (
            problem.sheet.as_str(),
            problem.column.as_str(),
            problem.message.as_str(),
        );
        let next = first_seen.len();
        let order = *first_seen.entry(key).or_insert(next);
        let entry =
            kinds
                .entry((order, key.0, key.1, key.2))
                .or_insert((0, problem.row, problem.entries));
        entry.0 += 1;
    }
    let _ = writeln!(
        out,
        "  ... and {} more, by kind:",
        thousands(problems.len() - shown)
    );
    for ((_, sheet, column, message), (count, first, entries)) in kinds {
        let (rows, place) = if entries {
            (plural_word(count, "entry", "entries"), "key")
        } else {
            (plural_word(count, "row", "rows"), "column")
        };
        let _ = writeln!(
            out,
            "  {sheet}, {place} '{column}': {message}: {} {rows} (first at {} {first})",
            thousands(count),
            if entries { "entry" } else { "row" }
        );
    }
    let _ = writeln!(
        out,
        "  (--all-errors prints every one; --errors-file FILE writes them)"
    );
    out
}

/// Shot codes as short runs: `SHT-00001..SHT-00004, SHT-00009`, at most `shown` runs
/// and then a count of the rest.
#[must_use]
pub fn code_runs(codes: &[&str], shown: usize) -> String {
    let number = |code: &str| {
        code.parse::<reelmesh_protocol::model::ShotCode>()
            .ok()
            .map(|c| c.0)
    };
    let mut runs: Vec<(String, String, usize)> = Vec::new();
    let mut last: Option<u64> = None;
    for code in codes {
        let n = number(code);
        match (runs.last_mut(), last, n) {
            (Some(run), Some(prev), Some(n)) if n == prev + 1 => {
                run.1 = (*code).to_owned();
                run.2 += 1;
            }
            _ => runs.push(((*code).to_owned(), (*code).to_owned(), 1)),
        }
        last = n;
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(shown)
        .map(|(first, end, count)| {
            if *count == 1 {
                first.clone()
            } else {
                format!("{first}..{end}")
            }
        })
        .collect();
    if runs.len() > shown {
        let rest: usize = runs[shown..].iter().map(|r| r.2).sum();
        parts.push(format!("and {} more", thousands(rest)));
    }
    parts.join(", ")
}

/// The one line that says which records were created for names nothing defined
/// ("created 2 characters named in the shots: Mina, Joon; add their appearance and
/// LoRA"), or, `dry_run`, would be.
#[must_use]
pub fn created_lines(report: &ImportReport, dry_run: bool) -> Vec<String> {
    let verb = if dry_run { "would create" } else { "created" };
    let list = |names: &[String]| -> String {
        const SHOWN: usize = 10;
        let mut text = names
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > SHOWN {
            text.push_str(&format!(" and {} more", thousands(names.len() - SHOWN)));
        }
        text
    };
    let mut lines = Vec::new();
    if !report.created_characters.is_empty() {
        lines.push(format!(
            "{verb} {} named in the shots: {}; add their appearance and LoRA",
            plural(report.created_characters.len(), "character", "characters"),
            list(&report.created_characters)
        ));
    }
    if !report.created_cinematics.is_empty() {
        lines.push(format!(
            "{verb} {} named in the shots: {}; fill in their camera, lens and lighting",
            plural(
                report.created_cinematics.len(),
                "cinematic option",
                "cinematic options"
            ),
            list(&report.created_cinematics)
        ));
    }
    lines
}

/// "1 row", "2 rows".
#[must_use]
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", thousands(n))
    }
}

fn plural_word<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(row: usize, message: &str) -> CellError {
        CellError {
            sheet: "Shots".into(),
            row,
            column: "Characters".into(),
            message: message.into(),
            entries: false,
        }
    }

    #[test]
    fn ten_thousand_problems_read_as_twenty_lines_and_a_count_per_kind() {
        let mut problems: Vec<CellError> = (2..5_014)
            .map(|row| problem(row, "'Joon' is not a character"))
            .collect();
        problems.extend((5_014..10_002).map(|row| problem(row, "'Mina' is not a character")));
        let text = summarize_problems(&problems, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20 + 1 + 2 + 1, "{text}");
        assert!(lines[0].contains("row 2"), "{text}");
        assert!(
            text.contains("'Joon' is not a character: 4,992 rows (first at row 22)"),
            "{text}"
        );
        assert!(
            text.contains("'Mina' is not a character: 4,988 rows (first at row 5014)"),
            "{text}"
        );
        assert_eq!(summarize_problems(&problems, true).lines().count(), 10_000);
        assert_eq!(summarize_problems(&problems[..3], false).lines().count(), 3);
    }

    #[test]
    fn codes_print_as_runs() {
        let codes = [
            "SHT-00001",
            "SHT-00002",
            "SHT-00003",
            "SHT-00007",
            "SHT-00009",
            "SHT-00010",
        ];
        assert_eq!(
            code_runs(&codes, 10),
            "SHT-00001..SHT-00003, SHT-00007, SHT-00009..SHT-00010"
        );
        assert_eq!(code_runs(&codes, 1), "SHT-00001..SHT-00003, and 3 more");
        assert_eq!(code_runs(&[], 3), "");
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
