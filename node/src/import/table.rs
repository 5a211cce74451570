//! Reading a file into plain text tables: every workbook sheet (calamine), the one
//! table of a CSV, or the lists of a JSON file ([`super::json`]). Cells become
//! strings here; typing and validation happen in [`super::sheets`], so all formats
//! share one set of rules and messages.
//!
//! A formula cell reads as the value the writing program saved with it. Programs that
//! do not calculate (openpyxl, some exporters) save formulas with no value: such
//! cells are counted per column ([`FormulaColumn`]) so the import can say so once
//! instead of taking them as empty.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use calamine::{Data, Reader, SheetType, open_workbook_auto_from_rs};

/// One sheet of text cells.
#[derive(Debug)]
pub(crate) struct Table {
    /// The sheet name (for CSV: empty; the caller names it by kind).
    pub(crate) name: String,
    /// Header cells, as written.
    pub(crate) headers: Vec<String>,
    /// 1-based spreadsheet row number of the header row.
    pub(crate) header_row: usize,
    /// Data rows below the header: (1-based row number, cells). Fully empty rows are dropped.
    pub(crate) rows: Vec<(usize, Vec<String>)>,
    /// Columns (by index) holding formulas below the header.
    pub(crate) formulas: BTreeMap<usize, FormulaColumn>,
    /// Rows are JSON list entries and columns JSON keys (for messages).
    pub(crate) entries: bool,
}

/// The formulas of one column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FormulaColumn {
    /// Formula cells below the header.
    pub(crate) cells: usize,
    /// Of those, cells saved without a value.
    pub(crate) uncached: usize,
    /// Row number of the first formula saved without a value.
    pub(crate) first_uncached_row: usize,
}

impl Table {
    /// The cell at `column` of `cells` (rows may be shorter than the header).
    pub(crate) fn cell(cells: &[String], column: usize) -> &str {
        cells.get(column).map_or("", String::as_str)
    }

    pub(crate) fn from_rows(
        name: String,
        rows: impl Iterator<Item = (usize, Vec<String>)>,
    ) -> Option<Table> {
        let mut rows = rows.filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()));
        let (header_row, headers) = rows.next()?;
        Some(Table {
            name,
            headers,
            header_row,
            rows: rows.collect(),
            formulas: BTreeMap::new(),
            entries: false,
        })
    }
}

/// Every worksheet of a workbook (xlsx, xlsm, xlsb, xls, ods) with any content, in order.
pub(crate) fn read_workbook(bytes: &[u8]) -> Result<Vec<Table>, String> {
    // calamine should never panic on bad input, but a panic must not take the node down.
    catch_unwind(AssertUnwindSafe(|| read_workbook_inner(bytes)))
        .unwrap_or_else(|_| Err("the workbook is damaged (the reader gave up on it)".to_owned()))
}

/// Whether a zipped workbook may hold formulas: for an .xlsx, any worksheet part
/// with a formula element; any other zip (.ods), always. Reading formulas is a second parse of every sheet, so a
/// workbook without any skips it. Anything unexpected answers "maybe".
fn xlsx_may_have_formulas(bytes: &[u8]) -> bool {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return true;
    };
    let finder = [
        memchr::memmem::Finder::new(b"<f>"),
        memchr::memmem::Finder::new(b"<f "),
        memchr::memmem::Finder::new(b":f>"),
        memchr::memmem::Finder::new(b":f "),
    ];
    let mut xml = Vec::new();
    let mut sheets = 0;
    for index in 0..archive.len() {
        let Ok(mut part) = archive.by_index(index) else {
            return true;
        };
        let sheet = part
            .name()
            .is_ok_and(|name| name.starts_with("xl/worksheets/") && name.ends_with(".xml"));
        if !sheet {
            continue;
        }
        sheets += 1;
        xml.clear();
        if std::io::Read::read_to_end(&mut part, &mut xml).is_err() {
            return true;
        }
        if finder.iter().any(|f| f.find(&xml).is_some()) {
            return true;
        }
    }
    // No worksheet part at all: not an .xlsx (an .ods is a zip too).
    sheets == 0
}

fn read_workbook_inner(bytes: &[u8]) -> Result<Vec<Table>, String> {
    let zipped = bytes.starts_with(b"PK\x03\x04");
    let formulas = !zipped || xlsx_may_have_formulas(bytes);
    let mut workbook = open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| format!("not a readable workbook ({})", one_line(&e.to_string())))?;
    let sheets: Vec<String> = workbook
        .sheets_metadata()
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet)
        .map(|sheet| sheet.name.clone())
        .collect();
    let mut tables = Vec::new();
    for name in sheets {
        let range = workbook.worksheet_range(&name).map_err(|e| {
            format!(
                "sheet '{name}' cannot be read ({})",
                one_line(&e.to_string())
            )
        })?;
        let Some((first_row, first_column)) = range.start() else {
            continue;
        };
        let first_row = first_row as usize;
        let rows = range
            .rows()
            .enumerate()
            .map(|(index, row)| (first_row + index + 1, row.iter().map(cell_text).collect()));
        let Some(mut table) = Table::from_rows(name.clone(), rows) else {
            continue;
        };
        if formulas && let Ok(formulas) = workbook.worksheet_formula(&name) {
            table.formulas = formula_columns(&formulas, &range, &table, first_column);
        }
        tables.push(table);
    }
    Ok(tables)
}

/// Count the formula cells of every column below the header, and those saved with
/// no value.
fn formula_columns(
    formulas: &calamine::Range<String>,
    values: &calamine::Range<Data>,
    table: &Table,
    first_column: u32,
) -> BTreeMap<usize, FormulaColumn> {
    let mut columns: BTreeMap<usize, FormulaColumn> = BTreeMap::new();
    let Some((formula_row, formula_column)) = formulas.start() else {
        return columns;
    };
    for (row_offset, row) in formulas.rows().enumerate() {
        let absolute_row = formula_row as usize + row_offset;
        let row_number = absolute_row + 1;
        if row_number <= table.header_row {
            continue;
        }
        for (column_offset, formula) in row.iter().enumerate() {
            if formula.trim().is_empty() {
                continue;
            }
            let absolute_column = formula_column as usize + column_offset;
            let Some(index) = absolute_column.checked_sub(first_column as usize) else {
                continue;
            };
            let cached = values
                .get_value((absolute_row as u32, absolute_column as u32))
                .is_some_and(|value| !matches!(value, Data::Empty));
            let entry = columns.entry(index).or_default();
            entry.cells += 1;
            if !cached {
                if entry.uncached == 0 {
                    entry.first_uncached_row = row_number;
                }
                entry.uncached += 1;
            }
        }
    }
    columns
}

/// The text of a cell. Numbers print in Rust's shortest round-trip form, so `72.0`
/// reads as "72" and `0.85` as "0.85" exactly.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::String(text) => text.clone(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// The one table of a CSV (`delimiter` b',') or TSV (b'\t') file. A UTF-8 byte order
/// mark (Excel, Airtable) is skipped.
pub(crate) fn read_delimited(bytes: &[u8], delimiter: u8) -> Result<Vec<Table>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if std::str::from_utf8(bytes).is_err() {
        return Err("the file is not UTF-8 text (save it as \"CSV UTF-8\")".to_owned());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| format!("not a readable CSV file ({})", one_line(&e.to_string())))?;
        rows.push((index + 1, record.iter().map(str::to_owned).collect()));
    }
    Ok(Table::from_rows(String::new(), rows.into_iter())
        .into_iter()
        .collect())
}

/// `text` on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The hidden sheet in which an exported workbook remembers where it came from.
pub(crate) const MARK_SHEET: &str = "_reelmesh";
/// Its rows: key, value.
pub(crate) const MARK_FORMAT: (&str, &str) = ("format", "reelmesh export 1");
pub(crate) const MARK_PROJECT: &str = "project_id";
pub(crate) const MARK_HEADS: &str = "heads";

/// Take the export mark sheet out of a workbook's tables, and read it.
pub(crate) fn take_mark(tables: &mut Vec<Table>) -> Option<super::ExportMark> {
    let at = tables.iter().position(|t| t.name == MARK_SHEET)?;
    let table = tables.remove(at);
    let mut project_id = None;
    let mut heads = None;
    for (_, cells) in std::iter::once((table.header_row, table.headers)).chain(table.rows) {
        match Table::cell(&cells, 0).trim() {
            MARK_PROJECT => project_id = Some(Table::cell(&cells, 1).trim().to_owned()),
            MARK_HEADS => {
                heads = Some(
                    Table::cell(&cells, 1)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Some(super::ExportMark {
        project_id: project_id?,
        heads: heads?,
    })
}
