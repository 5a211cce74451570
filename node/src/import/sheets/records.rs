//! The records a workbook defines besides shots: the project sheet (name, frame
//! rate, template), the character bible and the looks, each row matched to a
//! record by its id or name (claimed once per file).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Planner<'_> {
    pub(super) fn project_sheet(&mut self, table: &Table) {
        self.out.sheets.push(SheetReport {
            name: table.name.clone(),
            kind: Some(SheetKind::Project.key().to_owned()),
            rows: table.rows.len(),
            columns: Vec::new(),
        });
        let rows = std::iter::once((table.header_row, &table.headers))
            .chain(table.rows.iter().map(|(row, cells)| (*row, cells)));
        for (row, cells) in rows {
            let key_text = Table::cell(cells, 0).trim();
            let value = Table::cell(cells, 1);
            let bad = |planner: &mut Self, message: String| {
                planner.out.problems.push(CellError {
                    sheet: table.name.clone(),
                    row,
                    column: key_text.to_owned(),
                    message,
                    entries: table.entries,
                });
            };
            match ProjectKey::find(key_text) {
                Some(ProjectKey::Header | ProjectKey::ProjectId) => {}
                Some(ProjectKey::Name) => {
                    if !value.trim().is_empty() {
                        self.out.plan.name = Some(value.trim().to_owned());
                    }
                }
                Some(ProjectKey::FrameRate) => match value.parse::<FrameRate>() {
                    Ok(rate) => self.out.plan.frame_rate = Some(rate),
                    Err(e) => bad(self, e.to_string()),
                },
                Some(ProjectKey::PromptTemplate) => {
                    if !value.trim().is_empty() {
                        match check_template(value) {
                            Ok(()) => self.out.plan.prompt_template = Some(value.to_owned()),
                            Err(e) => bad(self, e),
                        }
                    }
                }
                Some(ProjectKey::Catalog(name)) => {
                    if catalog::catalog(&name).is_none() {
                        bad(self, format!("'{name}' is not a catalog"));
                    } else if !value.trim().is_empty() {
                        self.out
                            .plan
                            .catalog_values
                            .push((name, value.trim().to_owned()));
                    }
                }
                None if key_text.is_empty() => {}
                None => self.out.notes.push(format!(
                    "{}: setting '{key_text}' is not one reelmesh has: not imported",
                    table.name
                )),
            }
        }
    }

    /// Check a row's name and record id, and find the existing record it means.
    /// Returns None (after reporting) when the row is unusable.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn claim<'r, T>(
        &mut self,
        table: &Table,
        row: usize,
        (name_at, id_at): (usize, Option<usize>),
        cells: &[String],
        claims: &mut Claims,
        existing: &'r [T],
        id_of: impl Fn(&T) -> &str,
        name_of: impl Fn(&T) -> &str,
    ) -> Option<(String, String, Option<&'r T>)> {
        let name = Table::cell(cells, name_at).trim().to_owned();
        let record_id = id_at
            .map_or("", |i| Table::cell(cells, i).trim())
            .to_owned();
        if name.is_empty() {
            self.error(table, row, name_at, "a name is required".to_owned());
            return None;
        }
        let key = name.to_lowercase();
        if let Some((sheet, other)) = claims.names.get(&key) {
            let message = format!("'{name}' is also named in {sheet}, row {other}");
            self.error(table, row, name_at, message);
            return None;
        }
        claims.names.insert(key.clone(), (table.name.clone(), row));
        let mut found = None;
        if !record_id.is_empty() {
            if let Some((sheet, other)) = claims.ids.get(&record_id) {
                let message = format!("'{record_id}' is also used in {sheet}, row {other}");
                self.error(table, row, id_at.unwrap_or(name_at), message);
                return None;
            }
            claims
                .ids
                .insert(record_id.clone(), (table.name.clone(), row));
            found = existing.iter().find(|r| id_of(r) == record_id);
        }
        if found.is_none() {
            let same_name: Vec<&T> = existing
                .iter()
                .filter(|r| name_of(r).to_lowercase() == key)
                .collect();
            if same_name.len() > 1 {
                let message = format!(
                    "{} records of the project are called '{name}'; add a Record ID column to pick one",
                    same_name.len()
                );
                self.error(table, row, name_at, message);
                return None;
            }
            found = same_name.first().copied();
        }
        if let Some(record) = found {
            let id = id_of(record).to_owned();
            if let Some((sheet, other)) = claims.ids.get(&id).filter(|(_, r)| *r != row) {
                let message = format!("this is the same record as {sheet}, row {other}");
                self.error(table, row, name_at, message);
                return None;
            }
            claims.ids.insert(id, (table.name.clone(), row));
        }
        Some((name, record_id, found))
    }

    /// Where the Name column is; an error if the sheet has none.
    pub(super) fn name_column(&mut self, table: &Table, layout: &Layout) -> Option<usize> {
        let found = layout.at.get(&Column::Name).copied();
        if found.is_none() {
            self.out.problems.push(CellError {
                sheet: table.name.clone(),
                row: table.header_row,
                column: "Name".to_owned(),
                message: "the sheet has no Name column".to_owned(),
                entries: table.entries,
            });
        }
        found
    }

    pub(super) fn characters_sheet(&mut self, table: &Table, claims: &mut Claims) {
        let layout = self.layout(table, SheetKind::Characters);
        let Some(name_at) = self.name_column(table, &layout) else {
            return;
        };
        let id_at = layout.at.get(&Column::RecordId).copied();
        let existing = &self.state.project.characters;
        for (row, cells) in &table.rows {
            let Some((name, record_id, found)) = self.claim(
                table,
                *row,
                (name_at, id_at),
                cells,
                claims,
                existing,
                |c: &Character| &c.character_id,
                |c: &Character| &c.name,
            ) else {
                continue;
            };
            let mut character = found.cloned().unwrap_or_else(|| {
                let mut new = Character::new(&name);
                if !record_id.is_empty() {
                    new.character_id.clone_from(&record_id);
                }
                new
            });
            if !record_id.is_empty() && record_id != character.character_id {
                self.links
                    .character_alias
                    .insert(record_id, character.character_id.clone());
            }
            character.name = name;
            let mut good = true;
            for (index, target) in layout.targets.iter().enumerate() {
                let Target::Field(column) = target else {
                    continue;
                };
                let cell = Table::cell(cells, index);
                let text = || cell.trim().to_owned();
                match column {
                    Column::Appearance => character.appearance = text(),
                    Column::ReferenceSheet => character.reference_sheet = text(),
                    Column::LoraPath => character.lora_path = text(),
                    Column::LoraStrength => {
                        if cell.trim().is_empty() {
                            continue;
                        }
                        match cell.trim().parse::<f64>() {
                            Ok(x) if (0.0..=1.0).contains(&x) => character.lora_strength = x,
                            _ => {
                                let message = format!(
                                    "'{cell}' is not a LoRA strength (a number from 0 to 1)"
                                );
                                self.error(table, *row, index, message);
                                good = false;
                            }
                        }
                    }
                    Column::TriggerWords => character.trigger_words = split_list(cell),
                    Column::ClothingOptions => character.clothing_options = split_list(cell),
                    Column::DefaultClothing => character.default_clothing = text(),
                    Column::StyleKeywords => character.style_keywords = split_list(cell),
                    _ => {}
                }
            }
            Self::extras(&layout, cells, &mut character.extra);
            if good {
                self.out.plan.characters.push(character);
            }
        }
    }

    pub(super) fn cinematics_sheet(&mut self, table: &Table, claims: &mut Claims) {
        let layout = self.layout(table, SheetKind::Cinematics);
        let Some(name_at) = self.name_column(table, &layout) else {
            return;
        };
        let id_at = layout.at.get(&Column::RecordId).copied();
        let existing = &self.state.project.cinematics;
        for (row, cells) in &table.rows {
            let Some((name, record_id, found)) = self.claim(
                table,
                *row,
                (name_at, id_at),
                cells,
                claims,
                existing,
                |c: &CinematicOption| &c.cinematic_id,
                |c: &CinematicOption| &c.name,
            ) else {
                continue;
            };
            let mut option = found.cloned().unwrap_or_else(|| {
                let mut new = CinematicOption::new(&name);
                if !record_id.is_empty() {
                    new.cinematic_id.clone_from(&record_id);
                }
                new
            });
            if !record_id.is_empty() && record_id != option.cinematic_id {
                self.links
                    .cinematic_alias
                    .insert(record_id, option.cinematic_id.clone());
            }
            option.name = name;
            for (index, target) in layout.targets.iter().enumerate() {
                let text = Table::cell(cells, index).trim().to_owned();
                match target {
                    Target::Field(Column::Look(field)) => *option.look.get_mut(*field) = text,
                    Target::Field(Column::Notes) => option.notes = text,
                    _ => {}
                }
            }
            Self::extras(&layout, cells, &mut option.extra);
            self.out.plan.cinematics.push(option);
        }
    }
}
