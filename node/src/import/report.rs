//! What an import says: how every sheet and column was understood, what it added,
//! updated and created, the conflicts of a three-way import, and its problems,
//! summarised so that ten thousand bad cells read as a few lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many problems are printed in full before the rest are counted by kind.
pub const PROBLEMS_IN_FULL: usize = 20;

pub use reelmesh_protocol::api::import::{
    BaseReport, CellError, ColumnReport, Conflict, ImportReport, RecordChange, SheetReport,
};

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
