//! The xlsx workbook writer (rust_xlsxwriter).

use std::collections::BTreeSet;

use reelmesh_protocol::model::Project;
use reelmesh_protocol::timecode::Timecode;
use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, Worksheet, XlsxError};

use crate::import::columns::{
    CINEMATIC_FIELDS, CINEMATIC_NAME, CINEMATIC_NOTES, CharacterColumn, PROJECT_CATALOG_PREFIX,
    PROJECT_FRAME_RATE, PROJECT_HEADER, PROJECT_ID, PROJECT_NAME, PROJECT_TEMPLATE, RECORD_ID,
    SheetKind, ShotColumn,
};

/// How multi-value cells are joined (the importer splits on commas).
const JOIN: &str = ", ";

/// The whole project as an xlsx file.
pub(crate) fn workbook(project: &Project) -> Result<Vec<u8>, XlsxError> {
    let bold = Format::new().set_bold();
    let mut workbook = Workbook::new();
    shots_sheet(workbook.add_worksheet(), project, &bold)?;
    characters_sheet(workbook.add_worksheet(), project, &bold)?;
    cinematics_sheet(workbook.add_worksheet(), project, &bold)?;
    project_sheet(workbook.add_worksheet(), project, &bold)?;
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

fn shots_sheet(sheet: &mut Worksheet, project: &Project, bold: &Format) -> Result<(), XlsxError> {
    sheet.set_name(SheetKind::Shots.label())?;
    let extras: BTreeSet<&str> = project
        .shots
        .iter()
        .flat_map(|s| s.extra.keys().map(String::as_str))
        .collect();
    let fixed: Vec<ShotColumn> = ShotColumn::ALL
        .into_iter()
        .filter(|c| *c != ShotColumn::RecordId)
        .collect();
    let mut headers: Vec<&str> = fixed.iter().map(|c| c.header()).collect();
    headers.extend(extras.iter().copied());
    headers.push(ShotColumn::RecordId.header());
    header_row(sheet, &headers, bold)?;
    let rate = project.settings.frame_rate;
    let ranges = project.shot_frame_ranges();
    for (index, (shot, (tc_in, tc_out))) in project.shots.iter().zip(ranges).enumerate() {
        let row = row_num(index);
        for (at, column) in fixed.iter().enumerate() {
            match column {
                ShotColumn::Code => text(sheet, row, at, &shot.code.to_string())?,
                ShotColumn::Scene => text(sheet, row, at, &shot.scene)?,
                ShotColumn::Action => text(sheet, row, at, &shot.action)?,
                ShotColumn::Characters => {
                    let names: Vec<&str> = shot
                        .characters
                        .iter()
                        .filter_map(|id| project.character(id))
                        .map(|c| c.name.as_str())
                        .collect();
                    text(sheet, row, at, &names.join(JOIN))?;
                }
                ShotColumn::Cinematic => {
                    let name = shot
                        .cinematic
                        .as_deref()
                        .and_then(|id| project.cinematic(id))
                        .map_or("", |c| c.name.as_str());
                    text(sheet, row, at, name)?;
                }
                ShotColumn::PromptOverride => {
                    text(
                        sheet,
                        row,
                        at,
                        shot.prompt_override.as_deref().unwrap_or(""),
                    )?;
                }
                ShotColumn::ReferenceImages => {
                    text(sheet, row, at, &shot.reference_images.join(JOIN))?;
                }
                ShotColumn::FrameCount => {
                    sheet.write_number(row, col(at), shot.frame_count as f64)?;
                }
                ShotColumn::Duration => {
                    sheet.write_number(row, col(at), rate.frames_to_seconds(shot.frame_count))?;
                }
                ShotColumn::TimecodeIn => text(
                    sheet,
                    row,
                    at,
                    &Timecode::from_frames(tc_in, rate).to_string(),
                )?,
                ShotColumn::TimecodeOut => text(
                    sheet,
                    row,
                    at,
                    &Timecode::from_frames(tc_out, rate).to_string(),
                )?,
                ShotColumn::Status => text(sheet, row, at, shot.status.as_str())?,
                ShotColumn::Workflow => text(sheet, row, at, &shot.workflow)?,
                ShotColumn::Notes => text(sheet, row, at, &shot.notes)?,
                ShotColumn::RecordId => {}
            }
        }
        for (offset, header) in extras.iter().enumerate() {
            let value = shot.extra.get(*header).map_or("", String::as_str);
            text(sheet, row, fixed.len() + offset, value)?;
        }
        text(sheet, row, fixed.len() + extras.len(), &shot.shot_id)?;
    }
    Ok(())
}

fn characters_sheet(
    sheet: &mut Worksheet,
    project: &Project,
    bold: &Format,
) -> Result<(), XlsxError> {
    sheet.set_name(SheetKind::Characters.label())?;
    let headers: Vec<&str> = CharacterColumn::ALL.iter().map(|c| c.header()).collect();
    header_row(sheet, &headers, bold)?;
    for (index, character) in project.characters.iter().enumerate() {
        let row = row_num(index);
        for (at, column) in CharacterColumn::ALL.iter().enumerate() {
            match column {
                CharacterColumn::Name => text(sheet, row, at, &character.name)?,
                CharacterColumn::Appearance => text(sheet, row, at, &character.appearance)?,
                CharacterColumn::ReferenceSheet => {
                    text(sheet, row, at, &character.reference_sheet)?;
                }
                CharacterColumn::LoraPath => text(sheet, row, at, &character.lora_path)?,
                CharacterColumn::LoraStrength => {
                    sheet.write_number(row, col(at), character.lora_strength)?;
                }
                CharacterColumn::TriggerWords => {
                    text(sheet, row, at, &character.trigger_words.join(JOIN))?;
                }
                CharacterColumn::ClothingOptions => {
                    text(sheet, row, at, &character.clothing_options.join(JOIN))?;
                }
                CharacterColumn::DefaultClothing => {
                    text(sheet, row, at, &character.default_clothing)?;
                }
                CharacterColumn::StyleKeywords => {
                    text(sheet, row, at, &character.style_keywords.join(JOIN))?;
                }
                CharacterColumn::RecordId => text(sheet, row, at, &character.character_id)?,
            }
        }
    }
    Ok(())
}

fn cinematics_sheet(
    sheet: &mut Worksheet,
    project: &Project,
    bold: &Format,
) -> Result<(), XlsxError> {
    sheet.set_name(SheetKind::Cinematics.label())?;
    let mut headers = vec![CINEMATIC_NAME[0]];
    headers.extend(CINEMATIC_FIELDS.iter().map(|f| f.names[0]));
    headers.push(CINEMATIC_NOTES[0]);
    headers.push(RECORD_ID[0]);
    header_row(sheet, &headers, bold)?;
    for (index, option) in project.cinematics.iter().enumerate() {
        let row = row_num(index);
        text(sheet, row, 0, &option.name)?;
        for (offset, field) in CINEMATIC_FIELDS.iter().enumerate() {
            text(sheet, row, 1 + offset, (field.get)(option))?;
        }
        text(sheet, row, 1 + CINEMATIC_FIELDS.len(), &option.notes)?;
        text(sheet, row, 2 + CINEMATIC_FIELDS.len(), &option.cinematic_id)?;
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
