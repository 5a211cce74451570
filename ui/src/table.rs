//! The shot table: one display row per live shot, in timeline order, with derived
//! timecodes, durations, linked names and the prompt.

use reelmesh_protocol::model::Project;
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
    let rate = project.settings.frame_rate;
    project
        .shots
        .iter()
        .zip(project.shot_frame_ranges())
        .map(|(shot, (start, end))| {
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
}
