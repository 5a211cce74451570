//! The prompt engine: the seed's Airtable CONCATENATE formula, done properly.
//!
//! A template is text with `{placeholders}`, cut into *parts* at commas. A part whose
//! placeholders are all empty is dropped whole (so an empty camera leaves no
//! "captured with" and no stray comma); inside a kept part, empty placeholders vanish
//! and white space is folded. Literal text in a part with no placeholder is kept.
//! The LoRA trigger words of every linked character are always included: at
//! `{triggers}` when the template has it, else appended at the end.
//!
//! Placeholders: `style`, `subject`, `action`, `environment`, `scene`, `camera`,
//! `focal_length`, `lens`, `film`, `look`, `lighting_style`, `lighting_source`,
//! `atmosphere`, `filter`, `ratio`, `triggers`, `character_style`. Unknown
//! placeholders are reported by [`check_template`].

use crate::model::{Project, Shot};

/// The default template, in the seed's order: style, subject, action, environment,
/// camera, lens, film, lighting, atmosphere, filter, ratio, then trigger words.
pub const DEFAULT_TEMPLATE: &str = "{style} image of {subject}, {action}, set in {environment}, \
captured with {camera}, {focal_length} {lens} lens, {film}, {lighting_style} {lighting_source} lighting, \
{atmosphere}, {filter}, aspect ratio {ratio}, {character_style}, {triggers}";

/// Every placeholder the engine fills.
pub const PLACEHOLDERS: &[&str] = &[
    "style",
    "subject",
    "action",
    "environment",
    "scene",
    "camera",
    "focal_length",
    "lens",
    "film",
    "look",
    "lighting_style",
    "lighting_source",
    "atmosphere",
    "filter",
    "ratio",
    "triggers",
    "character_style",
];

/// A prompt and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShotPrompt {
    /// The text sent to the workflow.
    pub text: String,
    /// True when the shot's manual override replaced the assembled prompt.
    pub overridden: bool,
}

/// Problems in a template: unknown placeholder names or an unclosed brace.
pub fn check_template(template: &str) -> Result<(), String> {
    for piece in tokens(template) {
        match piece {
            Token::Placeholder(name) if !PLACEHOLDERS.contains(&name) => {
                return Err(format!(
                    "unknown placeholder '{{{name}}}' in the prompt template (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            Token::Unclosed => return Err("the prompt template has an unclosed '{'".to_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// The prompt of `shot` in `project`: its override, or the template filled in.
#[must_use]
pub fn shot_prompt(project: &Project, shot: &Shot) -> ShotPrompt {
    if let Some(text) = shot
        .prompt_override
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        return ShotPrompt {
            text: text.trim().to_owned(),
            overridden: true,
        };
    }
    ShotPrompt {
        text: assemble(&project.settings.prompt_template, &|name| {
            value(project, shot, name)
        }),
        overridden: false,
    }
}

/// Fill `template` using `lookup` for each placeholder.
#[must_use]
pub fn assemble(template: &str, lookup: &dyn Fn(&str) -> String) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut has_triggers = false;
    for part in template.split(',') {
        let mut text = String::new();
        let mut placeholders = 0_usize;
        let mut filled = 0_usize;
        for piece in tokens(part) {
            match piece {
                Token::Literal(lit) => text.push_str(lit),
                Token::Placeholder(name) => {
                    placeholders += 1;
                    has_triggers |= name == "triggers";
                    let v = lookup(name);
                    if !v.trim().is_empty() {
                        filled += 1;
                        text.push_str(v.trim());
                    }
                }
                Token::Unclosed => {}
            }
        }
        if placeholders > 0 && filled == 0 {
            continue;
        }
        let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !folded.is_empty() {
            parts.push(folded);
        }
    }
    if !has_triggers {
        let triggers = lookup("triggers");
        if !triggers.trim().is_empty() {
            parts.push(triggers.trim().to_owned());
        }
    }
    parts.join(", ")
}

enum Token<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
    Unclosed,
}

fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find('{') {
            Some(0) => match rest.find('}') {
                Some(end) => {
                    let name = rest[1..end].trim();
                    rest = &rest[end + 1..];
                    Some(Token::Placeholder(name))
                }
                None => {
                    rest = "";
                    Some(Token::Unclosed)
                }
            },
            Some(start) => {
                let lit = &rest[..start];
                rest = &rest[start..];
                Some(Token::Literal(lit))
            }
            None => {
                let lit = rest;
                rest = "";
                Some(Token::Literal(lit))
            }
        }
    })
}

fn value(project: &Project, shot: &Shot, name: &str) -> String {
    let look = shot
        .cinematic
        .as_deref()
        .and_then(|id| project.cinematic(id));
    let field =
        |f: fn(&crate::model::CinematicOption) -> &String| look.map(f).cloned().unwrap_or_default();
    let characters: Vec<_> = shot
        .characters
        .iter()
        .filter_map(|id| project.character(id))
        .collect();
    match name {
        "style" => field(|c| &c.style),
        "subject" => characters
            .iter()
            .map(|c| {
                let who = if c.appearance.trim().is_empty() {
                    c.name.trim()
                } else {
                    c.appearance.trim()
                };
                if c.default_clothing.trim().is_empty() {
                    who.to_owned()
                } else {
                    format!("{who} wearing {}", c.default_clothing.trim())
                }
            })
            .collect::<Vec<_>>()
            .join(" and "),
        "action" => shot.action.clone(),
        "scene" => shot.scene.clone(),
        "environment" => {
            let env = field(|c| &c.environment);
            if env.trim().is_empty() {
                shot.scene.clone()
            } else {
                env
            }
        }
        "camera" => field(|c| &c.camera_body),
        "focal_length" => field(|c| &c.focal_length),
        "lens" => field(|c| &c.lens_type),
        "film" => field(|c| &c.film_stock),
        "look" => field(|c| &c.look_and_feel),
        "lighting_style" => field(|c| &c.lighting_style),
        "lighting_source" => field(|c| &c.lighting_source),
        "atmosphere" => field(|c| &c.atmosphere),
        "filter" => {
            let filter = field(|c| &c.lens_filter);
            if filter.trim().eq_ignore_ascii_case("none") {
                String::new()
            } else {
                filter
            }
        }
        "ratio" => field(|c| &c.aspect_ratio),
        "triggers" => join_unique(characters.iter().flat_map(|c| c.trigger_words.iter())),
        "character_style" => join_unique(characters.iter().flat_map(|c| c.style_keywords.iter())),
        _ => String::new(),
    }
}

fn join_unique<'a>(words: impl Iterator<Item = &'a String>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for word in words.map(|w| w.trim()).filter(|w| !w.is_empty()) {
        if !seen.contains(&word) {
            seen.push(word);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Character, CinematicOption, ProjectSettings, ShotCode};
    use crate::timecode::FrameRate;

    fn project() -> (Project, Shot) {
        let mut mina = Character::new("Mina");
        mina.appearance = "a young woman with short black hair".into();
        mina.default_clothing = "a red raincoat".into();
        mina.trigger_words = vec!["m1na_style".into()];
        let mut jun = Character::new("준");
        jun.trigger_words = vec!["jun_lora".into(), "m1na_style".into()];
        let mut look = CinematicOption::new("Noir");
        look.style = "photorealistic".into();
        look.environment = "a rainy Seoul alley at night".into();
        look.camera_body = "Arri Alexa 35".into();
        look.focal_length = "35mm".into();
        look.lens_type = "anamorphic".into();
        look.film_stock = "Kodak Vision3 500T".into();
        look.lighting_style = "low key".into();
        look.lighting_source = "neon".into();
        look.atmosphere = "tense".into();
        look.lens_filter = "Black Pro-Mist 1/4".into();
        look.aspect_ratio = "2.39:1".into();
        let mut shot = Shot::new(ShotCode(1), 48);
        shot.action = "runs toward the camera".into();
        shot.characters = vec![mina.character_id.clone(), jun.character_id.clone()];
        shot.cinematic = Some(look.cinematic_id.clone());
        let project = Project {
            project_id: "p".into(),
            settings: ProjectSettings {
                name: "t".into(),
                frame_rate: FrameRate::Fps24,
                prompt_template: DEFAULT_TEMPLATE.into(),
            },
            shots: vec![shot.clone()],
            characters: vec![mina, jun],
            cinematics: vec![look],
            catalog_additions: Default::default(),
        };
        (project, shot)
    }

    #[test]
    fn full_prompt_follows_the_seed_order() {
        let (project, shot) = project();
        let prompt = shot_prompt(&project, &shot);
        assert!(!prompt.overridden);
        assert_eq!(
            prompt.text,
            "photorealistic image of a young woman with short black hair wearing a red raincoat and 준, \
runs toward the camera, set in a rainy Seoul alley at night, captured with Arri Alexa 35, \
35mm anamorphic lens, Kodak Vision3 500T, low key neon lighting, tense, Black Pro-Mist 1/4, \
aspect ratio 2.39:1, m1na_style, jun_lora"
        );
    }

    #[test]
    fn empty_parts_leave_no_stray_commas_or_words() {
        let (mut project, shot) = project();
        let look = &mut project.cinematics[0];
        look.camera_body.clear();
        look.lighting_style.clear();
        look.focal_length.clear();
        look.lens_filter = "none".into();
        look.aspect_ratio.clear();
        let text = shot_prompt(&project, &shot).text;
        assert!(!text.contains("captured with"), "{text}");
        assert!(
            !text.contains(", ,") && !text.contains("  ") && !text.ends_with(','),
            "{text}"
        );
        assert!(text.contains(", anamorphic lens, "), "{text}");
        assert!(text.contains(", neon lighting, "), "{text}");
        assert!(!text.contains("aspect ratio"), "{text}");
    }

    #[test]
    fn shot_with_nothing_linked_is_just_its_action() {
        let (mut project, mut shot) = project();
        shot.characters.clear();
        shot.cinematic = None;
        project.shots = vec![shot.clone()];
        assert_eq!(shot_prompt(&project, &shot).text, "runs toward the camera");
    }

    #[test]
    fn override_wins_and_says_so() {
        let (project, mut shot) = project();
        shot.prompt_override = Some("  a hand-written prompt ".into());
        assert_eq!(
            shot_prompt(&project, &shot),
            ShotPrompt {
                text: "a hand-written prompt".into(),
                overridden: true
            }
        );
        shot.prompt_override = Some("   ".into());
        assert!(!shot_prompt(&project, &shot).overridden);
    }

    #[test]
    fn triggers_are_appended_when_the_template_lacks_them() {
        let (mut project, shot) = project();
        project.settings.prompt_template = "{action}".into();
        assert_eq!(
            shot_prompt(&project, &shot).text,
            "runs toward the camera, m1na_style, jun_lora"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template(DEFAULT_TEMPLATE).is_ok());
        assert!(check_template("{actoin}").is_err_and(|e| e.contains("actoin")));
        assert!(check_template("{action").is_err());
    }
}
