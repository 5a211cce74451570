//! The xlsx workbook writer (rust_xlsxwriter).

use std::collections::{BTreeMap, BTreeSet};

use reelmesh_protocol::model::Project;
use reelmesh_protocol::prompt::shot_prompt;
use reelmesh_protocol::timecode::Timecode;
use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, Worksheet, XlsxError};

use crate::import::ExportMark;
use crate::import::columns::{
    Column, PROJECT_CATALOG_PREFIX, PROJECT_FRAME_RATE, PROJECT_HEADER, PROJECT_ID, PROJECT_NAME,
    PROJECT_TEMPLATE, SheetKind, columns_of,
};
use crate::import::table::{MARK_FORMAT, MARK_HEADS, MARK_PROJECT, MARK_SHEET};

/// How multi-value cells are joined (the importer splits on commas).
const JOIN: &str = ", ";

/// The whole project as an xlsx file; `mark` goes into a hidden sheet.
pub(crate) fn workbook(project: &Project, mark: Option<&ExportMark>) -> Result<Vec<u8>, XlsxError> {
    let bold = Format::new().set_bold();
    let mut workbook = Workbook::new();
    shots_sheet(workbook.add_worksheet(), project, &bold)?;
    characters_sheet(workbook.add_worksheet(), project, &bold)?;
    cinematics_sheet(workbook.add_worksheet(), project, &bold)?;
    project_sheet(workbook.add_worksheet(), project, &bold)?;
    if let Some(mark) = mark {
        mark_sheet(workbook.add_worksheet(), mark)?;
    }
    workbook.save_to_buffer()
}

fn col(index: usize) -> ColNum {
    ColNum::try_from(index).unwrap_or(ColNum::MAX)
}

fn header_row(sheet: &mut Worksheet, headers: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (index, header) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, col(index), *header, bold)?;
        sheet.set_column_width(col(index), 18)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

/// Write a text cell; empty text leaves the cell empty.
fn text(sheet: &mut Worksheet, row: RowNum, column: usize, value: &str) -> Result<(), XlsxError> {
    if !value.is_empty() {
        sheet.write_string(row, col(column), value)?;
    }
    Ok(())
}

fn row_num(index: usize) -> RowNum {
    RowNum::try_from(index + 1).unwrap_or(RowNum::MAX)
}

/// The fixed columns of a sheet kind, Record ID left for the end.
fn fixed_columns(kind: SheetKind) -> Vec<Column> {
    columns_of(kind)
        .iter()
        .map(|(column, _)| *column)
        .filter(|c| *c != Column::RecordId)
        .collect()
}

/// Name a sheet of `kind` and write its header row: the fixed columns, every extra
/// header the records have, then Record ID. Returns the fixed columns and extras.
fn start_sheet<'a>(
    sheet: &mut Worksheet,
    kind: SheetKind,
    records: impl Iterator<Item = &'a BTreeMap<String, String>>,
    bold: &Format,
) -> Result<(Vec<Column>, Vec<&'a str>), XlsxError> {
    sheet.set_name(kind.label())?;
    let extras: BTreeSet<&str> = records
        .flat_map(|extra| extra.keys().map(String::as_str))
        .collect();
    let extras: Vec<&str> = extras.into_iter().collect();
    let fixed = fixed_columns(kind);
    let mut headers: Vec<&str> = fixed.iter().map(|c| c.header()).collect();
    headers.extend(extras.iter().copied());
    headers.push(Column::RecordId.header());
    header_row(sheet, &headers, bold)?;
    Ok((fixed, extras))
}

/// A record row's extra cells and its Record ID, after its `fixed` cells.
fn end_row(
    sheet: &mut Worksheet,
    row: RowNum,
    fixed: usize,
    extras: &[&str],
    values: &BTreeMap<String, String>,
    record_id: &str,
) -> Result<(), XlsxError> {
    for (offset, header) in extras.iter().enumerate() {
        let value = values.get(*header).map_or("", String::as_str);
        text(sheet, row, fixed + offset, value)?;
    }
    text(sheet, row, fixed + extras.len(), record_id)
}

fn shots_sheet(sheet: &mut Worksheet, project: &Project, bold: &Format) -> Result<(), XlsxError> {
    let (fixed, extras) = start_sheet(
        sheet,
        SheetKind::Shots,
        project.shots.iter().map(|r| &r.extra),
        bold,
    )?;
    let rate = project.settings.frame_rate;
    let ranges = project.shot_frame_ranges();
    for (index, (shot, (tc_in, tc_out))) in project.shots.iter().zip(ranges).enumerate() {
        let row = row_num(index);
        for (at, column) in fixed.iter().enumerate() {
            match column {
                Column::Code => text(sheet, row, at, &shot.code.to_string())?,
                Column::Scene => text(sheet, row, at, &shot.scene)?,
                Column::Action => text(sheet, row, at, &shot.action)?,
                Column::Characters => {
                    let names: Vec<&str> = shot
                        .characters
                        .iter()
                        .filter_map(|id| project.character(id))
                        .map(|c| c.name.as_str())
                        .collect();
                    text(sheet, row, at, &names.join(JOIN))?;
                }
                Column::Cinematic => {
                    let name = shot
                        .cinematic
                        .as_deref()
                        .and_then(|id| project.cinematic(id))
                        .map_or("", |c| c.name.as_str());
                    text(sheet, row, at, name)?;
                }
                Column::Look(field) => text(sheet, row, at, shot.look.get(*field))?,
                Column::PromptOverride => {
                    text(
                        sheet,
                        row,
                        at,
                        shot.prompt_override.as_deref().unwrap_or(""),
                    )?;
                }
                Column::AssembledPrompt => {
                    text(sheet, row, at, &shot_prompt(project, shot).text)?;
                }
                Column::ReferenceImages => {
                    text(sheet, row, at, &shot.reference_images.join(JOIN))?;
                }
                Column::FrameCount => {
                    sheet.write_number(row, col(at), shot.frame_count as f64)?;
                }
                Column::Duration => {
                    sheet.write_number(row, col(at), rate.frames_to_seconds(shot.frame_count))?;
                }
                Column::TimecodeIn => text(
                    sheet,
                    row,
                    at,
                    &Timecode::from_frames(tc_in, rate).to_string(),
                )?,
                Column::TimecodeOut => text(
                    sheet,
                    row,
                    at,
                    &Timecode::from_frames(tc_out, rate).to_string(),
                )?,
                Column::Status => text(sheet, row, at, shot.status.as_str())?,
                Column::Workflow => text(sheet, row, at, &shot.workflow)?,
                Column::Notes => text(sheet, row, at, &shot.notes)?,
                _ => {}
            }
        }
        end_row(sheet, row, fixed.len(), &extras, &shot.extra, &shot.shot_id)?;
    }
    Ok(())
}

fn characters_sheet(
    sheet: &mut Worksheet,
    project: &Project,
    bold: &Format,
) -> Result<(), XlsxError> {
    let (fixed, extras) = start_sheet(
        sheet,
        SheetKind::Characters,
        project.characters.iter().map(|r| &r.extra),
        bold,
    )?;
    for (index, character) in project.characters.iter().enumerate() {
        let row = row_num(index);
        for (at, column) in fixed.iter().enumerate() {
            match column {
                Column::Name => text(sheet, row, at, &character.name)?,
                Column::Appearance => text(sheet, row, at, &character.appearance)?,
                Column::ReferenceSheet => text(sheet, row, at, &character.reference_sheet)?,
                Column::LoraPath => text(sheet, row, at, &character.lora_path)?,
                Column::LoraStrength => {
                    sheet.write_number(row, col(at), character.lora_strength)?;
                }
                Column::TriggerWords => {
                    text(sheet, row, at, &character.trigger_words.join(JOIN))?;
                }
                Column::ClothingOptions => {
                    text(sheet, row, at, &character.clothing_options.join(JOIN))?;
                }
                Column::DefaultClothing => text(sheet, row, at, &character.default_clothing)?,
                Column::StyleKeywords => {
                    text(sheet, row, at, &character.style_keywords.join(JOIN))?;
                }
                _ => {}
            }
        }
        end_row(
            sheet,
            row,
            fixed.len(),
            &extras,
            &character.extra,
            &character.character_id,
        )?;
    }
    Ok(())
}

fn cinematics_sheet(
    sheet: &mut Worksheet,
    project: &Project,
    bold: &Format,
) -> Result<(), XlsxError> {
    let (fixed, extras) = start_sheet(
        sheet,
        SheetKind::Cinematics,
        project.cinematics.iter().map(|r| &r.extra),
        bold,
    )?;
    for (index, option) in project.cinematics.iter().enumerate() {
        let row = row_num(index);
        for (at, column) in fixed.iter().enumerate() {
            match column {
                Column::Name => text(sheet, row, at, &option.name)?,
                Column::Look(field) => text(sheet, row, at, option.look.get(*field))?,
                Column::Notes => text(sheet, row, at, &option.notes)?,
                _ => {}
            }
        }
        end_row(
            sheet,
            row,
            fixed.len(),
            &extras,
            &option.extra,
            &option.cinematic_id,
        )?;
    }
    Ok(())
}

fn project_sheet(sheet: &mut Worksheet, project: &Project, bold: &Format) -> Result<(), XlsxError> {
    sheet.set_name(SheetKind::Project.label())?;
    header_row(sheet, &PROJECT_HEADER, bold)?;
    sheet.set_column_width(1, 80)?;
    let settings = &project.settings;
    let mut rows: Vec<(String, &str)> = vec![
        (PROJECT_NAME.to_owned(), &settings.name),
        (PROJECT_FRAME_RATE.to_owned(), settings.frame_rate.as_str()),
        (PROJECT_TEMPLATE.to_owned(), &settings.prompt_template),
        (PROJECT_ID.to_owned(), &project.project_id),
    ];
    for (catalog, values) in &project.catalog_additions {
        for value in values {
            rows.push((format!("{PROJECT_CATALOG_PREFIX}{catalog}"), value));
        }
    }
    for (index, (key, value)) in rows.iter().enumerate() {
        let row = row_num(index);
        sheet.write_string(row, 0, key)?;
        text(sheet, row, 1, value)?;
    }
    Ok(())
}

/// The hidden sheet that remembers which project version the file was made from.
fn mark_sheet(sheet: &mut Worksheet, mark: &ExportMark) -> Result<(), XlsxError> {
    sheet.set_name(MARK_SHEET)?;
    sheet.write_string(0, 0, MARK_FORMAT.0)?;
    sheet.write_string(0, 1, MARK_FORMAT.1)?;
    sheet.write_string(1, 0, MARK_PROJECT)?;
    sheet.write_string(1, 1, &mark.project_id)?;
    sheet.write_string(2, 0, MARK_HEADS)?;
    sheet.write_string(2, 1, mark.heads.join(" "))?;
    sheet.set_hidden(true);
    Ok(())
}
