//! Reading a file into plain text tables: every workbook sheet (calamine) or the one
//! table of a CSV. Cells become strings here; typing and validation happen in
//! [`super::sheets`], so all formats share one set of rules and messages.

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
}

impl Table {
    /// The cell at `column` of `cells` (rows may be shorter than the header).
    pub(crate) fn cell(cells: &[String], column: usize) -> &str {
        cells.get(column).map_or("", String::as_str)
    }

    fn from_rows(name: String, rows: impl Iterator<Item = (usize, Vec<String>)>) -> Option<Table> {
        let mut rows = rows.filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()));
        let (header_row, headers) = rows.next()?;
        Some(Table {
            name,
            headers,
            header_row,
            rows: rows.collect(),
        })
    }
}

/// Every worksheet of a workbook (xlsx, xlsm, xlsb, xls, ods) with any content, in order.
pub(crate) fn read_workbook(bytes: &[u8]) -> Result<Vec<Table>, String> {
    // calamine should never panic on bad input, but a panic must not take the node down.
    catch_unwind(AssertUnwindSafe(|| read_workbook_inner(bytes)))
        .unwrap_or_else(|_| Err("the workbook is damaged (the reader gave up on it)".to_owned()))
}

fn read_workbook_inner(bytes: &[u8]) -> Result<Vec<Table>, String> {
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
        let Some((first_row, _)) = range.start() else {
            continue;
        };
        let first_row = first_row as usize;
        let rows = range
            .rows()
            .enumerate()
            .map(|(index, row)| (first_row + index + 1, row.iter().map(cell_text).collect()));
        tables.extend(Table::from_rows(name, rows));
    }
    Ok(tables)
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
