//! The shot table: one display row per live shot, in timeline order, with derived
//! timecodes, durations, linked names and the prompt.

use reelmesh_protocol::model::{Project, Shot};
use reelmesh_protocol::prompt::shot_prompt;
use reelmesh_protocol::timecode::Timecode;
use serde::Serialize;

/// One row of the shot table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotRow {
    /// `SHT-00001`.
    pub code: String,
    /// Internal id.
    pub shot_id: String,
    /// Timecode in.
    pub timecode_in: String,
    /// Timecode out (exclusive: the first frame after the shot).
    pub timecode_out: String,
    /// Length in frames.
    pub frames: u64,
    /// Length in seconds at the project rate.
    pub duration_s: f64,
    /// Status.
    pub status: String,
    /// Linked character names.
    pub characters: Vec<String>,
    /// Linked cinematic option name.
    pub cinematic: String,
    /// Scene description.
    pub scene: String,
    /// Action.
    pub action: String,
    /// The prompt that would be rendered.
    pub prompt: String,
    /// True when the prompt is the shot's manual override.
    pub prompt_overridden: bool,
}

/// The rows of the shot table.
#[must_use]
pub fn shot_rows(project: &Project) -> Vec<ShotRow> {
    project
        .shots
        .iter()
        .zip(project.shot_frame_ranges())
        .map(|(shot, range)| row_of(project, shot, range))
        .collect()
}

/// One shot's row, its frames being `start..end` on the timeline.
fn row_of(project: &Project, shot: &Shot, (start, end): (u64, u64)) -> ShotRow {
    let rate = project.settings.frame_rate;
    let prompt = shot_prompt(project, shot);
    ShotRow {
        code: shot.code.to_string(),
        shot_id: shot.shot_id.clone(),
        timecode_in: Timecode::from_frames(start, rate).to_string(),
        timecode_out: Timecode::from_frames(end, rate).to_string(),
        frames: shot.frame_count,
        duration_s: rate.frames_to_seconds(shot.frame_count),
        status: shot.status.to_string(),
        characters: shot
            .characters
            .iter()
            .filter_map(|id| project.character(id).map(|c| c.name.clone()))
            .collect(),
        cinematic: shot
            .cinematic
            .as_deref()
            .and_then(|id| project.cinematic(id))
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        scene: shot.scene.clone(),
        action: shot.action.clone(),
        prompt: prompt.text,
        prompt_overridden: prompt.overridden,
    }
}

/// The rows of `project`, reusing those of `previous` (a project and its rows)
/// where a shot, its neighbours' lengths and everything a prompt reads are
/// unchanged.
#[must_use]
pub fn shot_rows_after(
    project: &Project,
    previous: Option<(&Project, &[std::sync::Arc<ShotRow>])>,
) -> Vec<std::sync::Arc<ShotRow>> {
    use std::sync::Arc;
    // Rows only depend on the shot, its frame range and these.
    let reusable = previous.filter(|(before, rows)| {
        before.shots.len() == rows.len()
            && before.settings == project.settings
            && before.characters == project.characters
            && before.cinematics == project.cinematics
    });
    let Some((before, rows)) = reusable else {
        return shot_rows(project).into_iter().map(Arc::new).collect();
    };
    let old: std::collections::HashMap<&str, (usize, (u64, u64))> = before
        .shots
        .iter()
        .zip(before.shot_frame_ranges())
        .enumerate()
        .map(|(i, (shot, range))| (shot.shot_id.as_str(), (i, range)))
        .collect();
    let rate = project.settings.frame_rate;
    project
        .shots
        .iter()
        .zip(project.shot_frame_ranges())
        .map(|(shot, range)| match old.get(shot.shot_id.as_str()) {
            Some((i, old_range)) if before.shots[*i] == *shot => {
                if *old_range == range {
                    Arc::clone(&rows[*i])
                } else {
                    let mut row = (*rows[*i]).clone();
                    row.timecode_in = Timecode::from_frames(range.0, rate).to_string();
                    row.timecode_out = Timecode::from_frames(range.1, rate).to_string();
                    Arc::new(row)
                }
            }
            _ => Arc::new(row_of(project, shot, range)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use reelmesh_protocol::document::{Position, ProjectDoc};
    use reelmesh_protocol::model::{Shot, ShotCode};
    use reelmesh_protocol::timecode::FrameRate;

    use super::*;

    #[test]
    fn timecodes_follow_order_and_lengths_at_drop_frame() {
        let mut doc = ProjectDoc::create("t", "p").expect("create");
        doc.set_frame_rate(FrameRate::Fps29_97Df).expect("rate");
        let shots = [
            Shot::new(ShotCode(1), 1800),
            Shot::new(ShotCode(2), 16182),
            Shot::new(ShotCode(3), 30),
        ];
        doc.add_shots(&shots, &Position::End).expect("add");
        let rows = shot_rows(&doc.project().expect("read"));
        let tc: Vec<_> = rows
            .iter()
            .map(|r| (r.timecode_in.as_str(), r.timecode_out.as_str()))
            .collect();
        assert_eq!(
            tc,
            vec![
                ("00:00:00;00", "00:01:00;02"),
                ("00:01:00;02", "00:10:00;00"),
                ("00:10:00;00", "00:10:01;00")
            ]
        );
        assert!((rows[0].duration_s - 60.06).abs() < 1e-9);
    }

    #[test]
    fn rows_reused_after_an_edit_are_the_rows_computed_afresh() {
        let mut doc = ProjectDoc::create("t", "p").expect("create");
        let shots: Vec<Shot> = (1..=6)
            .map(|i| {
                let mut shot = Shot::new(ShotCode(i), 24 * i);
                shot.action = format!("장면 {i}");
                shot
            })
            .collect();
        doc.add_shots(&shots, &Position::End).expect("add");
        let first = doc.project().expect("read");
        let rows = shot_rows_after(&first, None);
        // A longer shot 2 (later timecodes move), a new action on 5, 6 moved first.
        let mut two = first.shots[1].clone();
        two.frame_count = 100;
        doc.update_shot(&two).expect("edit");
        let mut five = first.shots[4].clone();
        five.action = "민아가 뒤돌아본다".into();
        doc.update_shot(&five).expect("edit");
        let to = Position::Before(first.shots[0].shot_id.clone());
        doc.move_shot(&first.shots[5].shot_id, &to).expect("move");
        let second = doc.project().expect("read");
        let reused = shot_rows_after(&second, Some((&first, &rows)));
        let fresh = shot_rows(&second);
        let reused: Vec<ShotRow> = reused.iter().map(|r| (**r).clone()).collect();
        assert_eq!(reused, fresh);
        // With nothing changed, every row is the same allocation.
        let base = shot_rows_after(&second, None);
        let same = shot_rows_after(&second, Some((&second, &base)));
        assert!(
            base.iter()
                .zip(&same)
                .all(|(a, b)| std::sync::Arc::ptr_eq(a, b))
        );
    }
}
