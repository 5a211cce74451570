//! Workflow advice, the pure part: what an advisor is told about a shot and the
//! workflows the mesh can run now, the JSON schema its answer must follow, the
//! check every answer gets on our side (servers enforce schemas only in part), and
//! the rule-based advisor used when no LLM is configured.
//!
//! The node asks the LLM (`reelmesh_node::advise`); everything here is plain data
//! in, plain data out, so it is tested without a server.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Project, Shot};

/// A workflow an advisor may pick: one the mesh can run now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its id (`ltx2`).
    pub id: String,
    /// `image-to-video`, `style-transfer`, ...
    pub kind: String,
    /// What it is for (the manifest's title and description).
    pub purpose: String,
    /// Least VRAM, GB (0 for API workflows rendered elsewhere).
    pub vram_min_gb: f64,
    /// Which inputs it takes: `first_frame`, `last_frame`, `reference_image`,
    /// `input_video`.
    pub inputs: Vec<String>,
}

impl Candidate {
    fn takes(&self, input: &str) -> bool {
        self.inputs.iter().any(|i| i == input)
    }
}

/// What an advisor knows of one shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotFacts {
    /// `SHT-00012`.
    pub code: String,
    /// Scene description.
    pub scene: String,
    /// What happens.
    pub action: String,
    /// Character names.
    pub characters: Vec<String>,
    /// Camera and look, as the prompt says them (`camera: Arri Alexa 35`, ...).
    pub camera_and_look: Vec<String>,
    /// Length in frames.
    pub frames: u64,
    /// Length in seconds.
    pub seconds: f64,
    /// It has a still take (a first frame exists).
    pub has_still: bool,
    /// Its still is approved.
    pub still_approved: bool,
    /// The previous shot has a still (a first frame for this one's start).
    pub previous_has_still: bool,
    /// The next shot has a still (a last frame for this one's end).
    pub next_has_still: bool,
    /// A style reference is set (the shot's reference images).
    pub has_style_reference: bool,
}

impl ShotFacts {
    /// The facts of `shot` in `project`; `has_still` tells whether a shot (by id)
    /// has a still take.
    #[must_use]
    pub fn of(project: &Project, shot: &Shot, has_still: &dyn Fn(&str) -> bool) -> ShotFacts {
        let index = project.shots.iter().position(|s| s.shot_id == shot.shot_id);
        let neighbour = |offset: isize| {
            index
                .and_then(|i| i.checked_add_signed(offset))
                .and_then(|i| project.shots.get(i))
                .is_some_and(|s| has_still(&s.shot_id))
        };
        let camera_and_look = crate::prompt::prompt_parts(project, shot)
            .into_iter()
            .filter(|p| {
                !p.value.is_empty() && !matches!(p.placeholder.as_str(), "subject" | "triggers")
            })
            .map(|p| format!("{}: {}", p.placeholder, p.value))
            .collect();
        let still = has_still(&shot.shot_id);
        ShotFacts {
            code: shot.code.to_string(),
            scene: shot.scene.clone(),
            action: shot.action.clone(),
            characters: shot
                .characters
                .iter()
                .filter_map(|id| project.character(id).map(|c| c.name.clone()))
                .collect(),
            camera_and_look,
            frames: shot.frame_count,
            seconds: project
                .settings
                .frame_rate
                .frames_to_seconds(shot.frame_count),
            has_still: still,
            still_approved: still && shot.status == crate::model::ShotStatus::Approved,
            previous_has_still: neighbour(-1),
            next_has_still: neighbour(1),
            has_style_reference: !shot.reference_images.is_empty(),
        }
    }
}

/// What one advice run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdviseStats {
    /// Requests sent to the LLM (retries included).
    pub requests: usize,
    /// The most requests in flight at once.
    pub max_in_flight: usize,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// Answers read by hand because the typed response did not decode.
    pub raw_fallbacks: usize,
}

/// The LLM settings a node keeps (`<data dir>/llm.toml`, written by the editor's
/// settings); the API key is never among them (`OPENAI_API_KEY` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<usize>,
    /// One request's time limit, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// Where an advice request asks (the node's own settings fill what is left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmChoice {
    /// `--llm-url`.
    #[serde(default)]
    pub url: Option<String>,
    /// `--llm-model`.
    #[serde(default)]
    pub model: Option<String>,
}

/// What the advisor is asked to be.
pub const SYSTEM: &str = "You are a film pre-production assistant. For one storyboard shot, \
pick the video workflow that best turns its still into a clip, from the workflows listed \
(only those can run now). Motion and performance suit image-to-video; a shot that must \
end on the next shot's first frame suits first-frame/last-frame; a shot that must match a \
style reference suits style transfer. Answer only with the JSON object asked for: the \
workflow id, one sentence of reason in the language of the shot's text, a suggested \
length in frames (the shot's own unless the action needs more or less), and your \
confidence from 0 to 1.";

/// The user message: the shot and the candidates, as JSON a model reads well.
#[must_use]
pub fn user_message(facts: &ShotFacts, candidates: &[Candidate]) -> String {
    let workflows: Vec<Value> = candidates
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "kind": c.kind,
                "purpose": c.purpose,
                "vram_min_gb": c.vram_min_gb,
                "inputs": c.inputs,
            })
        })
        .collect();
    let shot = json!({
        "code": facts.code,
        "scene": facts.scene,
        "action": facts.action,
        "characters": facts.characters,
        "camera_and_look": facts.camera_and_look,
        "length_frames": facts.frames,
        "length_seconds": (facts.seconds * 1000.0).round() / 1000.0,
        "has_still": facts.has_still,
        "still_approved": facts.still_approved,
        "previous_shot_has_still": facts.previous_has_still,
        "next_shot_has_still": facts.next_has_still,
        "has_style_reference": facts.has_style_reference,
    });
    json!({ "shot": shot, "workflows": workflows }).to_string()
}

/// The answer's JSON schema: `workflow` one of the candidates, a reason, a length,
/// a confidence.
#[must_use]
pub fn schema(candidates: &[Candidate]) -> Value {
    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    json!({
        "type": "object",
        "properties": {
            "workflow": { "type": "string", "enum": ids },
            "reason": { "type": "string", "maxLength": 300 },
            "suggested_frames": { "type": "integer", "minimum": 1, "maximum": 100000 },
            "confidence": { "type": "number", "minimum": 0, "maximum": 1 }
        },
        "required": ["workflow", "reason", "suggested_frames", "confidence"],
        "additionalProperties": false
    })
}

/// An answer that passed our checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The workflow.
    pub workflow: String,
    /// Why.
    pub reason: String,
    /// Suggested length.
    pub frames: Option<u64>,
    /// 0 to 1.
    pub confidence: f64,
}

/// Check a model's answer: JSON (a ```json fence around it is tolerated), a
/// workflow that exists (`known`) and is among the candidates, a reason, a
/// confidence within 0..1, a sane length. Each failure says what was wrong.
///
/// # Errors
/// What is wrong with the answer, quoting it.
pub fn check(content: &str, candidates: &[Candidate], known: &[String]) -> Result<Checked, String> {
    let text = content.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    let short = |s: &str| -> String {
        let cut: String = s.chars().take(120).collect();
        if cut.len() < s.len() {
            format!("{cut}…")
        } else {
            cut
        }
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", short(text)))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("the answer is not a JSON object: {}", short(text)))?;
    let workflow = object
        .get("workflow")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .ok_or("the answer names no workflow")?;
    if !candidates.iter().any(|c| c.id == workflow) {
        return Err(if known.iter().any(|k| k == workflow) {
            format!("the model chose '{workflow}', which no node of the mesh can run now")
        } else {
            format!("the model chose '{workflow}', which is not a workflow of the catalog")
        });
    }
    let reason = object
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or("the answer gives no reason")?;
    let confidence = object
        .get("confidence")
        .and_then(Value::as_f64)
        .ok_or("the answer gives no confidence")?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(format!("confidence {confidence} is outside 0..1"));
    }
    let frames = match object.get("suggested_frames") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100_000).contains(&n) => Some(n),
            _ => return Err(format!("suggested_frames {v} is not a length in frames")),
        },
    };
    Ok(Checked {
        workflow: workflow.to_owned(),
        reason: reason.chars().take(400).collect(),
        frames,
        confidence,
    })
}

/// Words in an action that mean something moves (English and Korean stems).
const MOTION: [&str; 32] = [
    "run", "walk", "jump", "turn", "enter", "leave", "fall", "fly", "drive", "chase", "dance",
    "fight", "move", "open", "close", "throw", "뛰", "달리", "걷", "걸어", "들어", "나가", "나온",
    "돌아", "넘어", "날아", "던지", "쫓", "춤", "싸우", "열", "닫",
];

/// The rule-based advisor: motion in the action → image to video; a still here and
/// on the next shot → first frame / last frame; a style reference → style
/// transfer; otherwise image to video for a subtle move. Each rule only picks a
/// workflow the mesh can run now; the reason says it is rule-based.
///
/// # Errors
/// No candidate fits (the reason says which kind was wanted).
pub fn rules(facts: &ShotFacts, candidates: &[Candidate]) -> Result<Checked, String> {
    let of_kind = |kind: &str, needs: &[&str]| {
        // Local image-to-video first in catalog order, API ones after.
        candidates
            .iter()
            .filter(|c| c.kind == kind && needs.iter().all(|n| c.takes(n)))
            .filter(|c| c.id != "wan_animate" || needs.contains(&"input_video"))
            .min_by(|a, b| {
                (a.vram_min_gb == 0.0)
                    .cmp(&(b.vram_min_gb == 0.0))
                    .then(b.vram_min_gb.total_cmp(&a.vram_min_gb))
            })
    };
    let action = facts.action.to_lowercase();
    let moves = MOTION.iter().any(|w| action.contains(w));
    let (picked, why, confidence) = if facts.has_style_reference
        && let Some(c) = of_kind("style-transfer", &["reference_image"])
    {
        (
            c,
            "a style reference is set: style transfer keeps the look",
            0.6,
        )
    } else if facts.has_still
        && facts.next_has_still
        && let Some(c) = candidates
            .iter()
            .find(|c| c.takes("first_frame") && c.takes("last_frame"))
    {
        (
            c,
            "this shot and the next have stills: first frame to last frame joins them",
            0.6,
        )
    } else if moves && let Some(c) = of_kind("image-to-video", &["first_frame"]) {
        (
            c,
            "the action has motion: image to video from the still",
            0.5,
        )
    } else if let Some(c) = of_kind("image-to-video", &["first_frame"]) {
        (c, "no strong motion: image to video for a subtle move", 0.3)
    } else {
        return Err("no image-to-video workflow can run on the mesh now".into());
    };
    Ok(Checked {
        workflow: picked.id.clone(),
        reason: format!("rule-based: {why}"),
        frames: Some(facts.frames),
        confidence,
    })
}

#[cfg(test)]
mod tests;
