//! The prompt engine: the seed's Airtable CONCATENATE formula, done properly.
//!
//! A template is text with `{placeholders}`, cut into *parts* at commas. A part whose
//! placeholders are all empty is dropped whole (so an empty camera leaves no
//! "captured with" and no stray comma); inside a kept part, empty placeholders vanish
//! and white space is folded. Literal text in a part with no placeholder is kept.
//! The LoRA trigger words of every linked character are always included: at
//! `{triggers}` when the template has it, else appended at the end.
//!
//! Look placeholders read the shot's own value, else its linked look's, else nothing
//! ([`Project::effective_look`]); a value of `none`, `-` or `없음` is nothing, so a
//! shot can blank out what its look says. `{environment}` is the look's environment
//! only: a scene description is a sentence, not a place (`{scene}` has it).
//!
//! Placeholders: `style`, `subject`, `action`, `environment`, `scene`, `camera`,
//! `focal_length`, `lens`, `film`, `look`, `lighting_style`, `lighting_source`,
//! `atmosphere`, `filter`, `ratio`, `triggers`, `character_style`. Unknown
//! placeholders are reported by [`check_template`].

use crate::model::{Character, Look, LookField, Project, Shot};

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
    let values = Values::of(project, shot);
    ShotPrompt {
        text: assemble(&project.settings.prompt_template, &|name| values.get(name)),
        overridden: false,
    }
}

/// Where a placeholder's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The shot's own field (action, scene) or its own look value.
    Shot,
    /// The shot's linked look (cinematic option), by name.
    Look(String),
    /// The shot's characters, by name.
    Characters(Vec<String>),
    /// Nothing: the placeholder is empty and its part of the template is dropped.
    Empty,
}

/// One placeholder of the template as a shot fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The placeholder (`camera`).
    pub placeholder: String,
    /// Its value for this shot.
    pub value: String,
    /// Where the value came from.
    pub source: Source,
}

/// Every placeholder of the project's template (plus `triggers` when the template
/// leaves them to the end) as `shot` fills it, in template order: what the
/// editor's prompt panel shows beside the prompt.
#[must_use]
pub fn prompt_parts(project: &Project, shot: &Shot) -> Vec<Part> {
    let linked = shot
        .cinematic
        .as_deref()
        .and_then(|id| project.cinematic(id));
    let values = Values::of(project, shot);
    let names: Vec<String> = values.characters.iter().map(|c| c.name.clone()).collect();
    let mut placeholders: Vec<&str> = Vec::new();
    for piece in tokens(&project.settings.prompt_template) {
        if let Token::Placeholder(name) = piece
            && !placeholders.contains(&name)
        {
            placeholders.push(name);
        }
    }
    if !placeholders.contains(&"triggers") {
        placeholders.push("triggers");
    }
    placeholders
        .into_iter()
        .map(|name| {
            let value = values.get(name).trim().to_owned();
            let source = if value.is_empty() {
                Source::Empty
            } else {
                match look_field(name) {
                    Some(field) if !is_blank(shot.look.get(field)) => Source::Shot,
                    Some(_) => linked.map_or(Source::Shot, |l| Source::Look(l.name.clone())),
                    None if matches!(name, "subject" | "triggers" | "character_style") => {
                        Source::Characters(names.clone())
                    }
                    None => Source::Shot,
                }
            };
            Part {
                placeholder: name.to_owned(),
                value,
                source,
            }
        })
        .collect()
}

/// The look field a placeholder reads, if it reads one.
fn look_field(placeholder: &str) -> Option<LookField> {
    Some(match placeholder {
        "style" => LookField::Style,
        "environment" => LookField::Environment,
        "camera" => LookField::CameraBody,
        "focal_length" => LookField::FocalLength,
        "lens" => LookField::LensType,
        "film" => LookField::FilmStock,
        "look" => LookField::LookAndFeel,
        "lighting_style" => LookField::LightingStyle,
        "lighting_source" => LookField::LightingSource,
        "atmosphere" => LookField::Atmosphere,
        "filter" => LookField::LensFilter,
        "ratio" => LookField::AspectRatio,
        _ => return None,
    })
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
                    // A value's own closing punctuation ("...the neon sign.") would
                    // stand before the part's comma: "sign., set in".
                    let v = v
                        .trim()
                        .trim_end_matches(['.', ',', ';', ':', '。'])
                        .trim_end();
                    if !v.is_empty() {
                        filled += 1;
                        text.push_str(v);
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

/// Whether a look value means "nothing here": a shot writes `none` (or `-`, `없음`)
/// to blank out a value its linked look has.
#[must_use]
pub fn is_blank(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || value == "-"
        || value == "없음"
        || value.eq_ignore_ascii_case("none")
        || value.eq_ignore_ascii_case("n/a")
}

/// What a shot's placeholders read: gathered once per shot.
struct Values<'a> {
    shot: &'a Shot,
    look: Look,
    characters: Vec<&'a Character>,
}

impl<'a> Values<'a> {
    /// What `shot`'s prompt reads: its own fields, its look over the linked one,
    /// its linked characters.
    fn of(project: &'a Project, shot: &'a Shot) -> Values<'a> {
        Values {
            shot,
            look: project.effective_look(shot),
            characters: shot
                .characters
                .iter()
                .filter_map(|id| project.character(id))
                .collect(),
        }
    }

    fn look(&self, field: LookField) -> String {
        let value = self.look.get(field);
        if is_blank(value) {
            String::new()
        } else {
            value.trim().to_owned()
        }
    }

    fn get(&self, name: &str) -> String {
        match name {
            "style" => self.look(LookField::Style),
            "subject" => self
                .characters
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
            "action" => self.shot.action.clone(),
            "scene" => self.shot.scene.clone(),
            "environment" => self.look(LookField::Environment),
            "camera" => self.look(LookField::CameraBody),
            "focal_length" => self.look(LookField::FocalLength),
            "lens" => self.look(LookField::LensType),
            "film" => self.look(LookField::FilmStock),
            "look" => self.look(LookField::LookAndFeel),
            "lighting_style" => self.look(LookField::LightingStyle),
            "lighting_source" => self.look(LookField::LightingSource),
            "atmosphere" => self.look(LookField::Atmosphere),
            "filter" => self.look(LookField::LensFilter),
            "ratio" => self.look(LookField::AspectRatio),
            "triggers" => join_unique(self.characters.iter().flat_map(|c| c.trigger_words.iter())),
            "character_style" => {
                join_unique(self.characters.iter().flat_map(|c| c.style_keywords.iter()))
            }
            _ => String::new(),
        }
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
    use crate::model::{CinematicOption, ProjectSettings, ShotCode};
    use crate::timecode::FrameRate;

    fn project() -> (Project, Shot) {
        let mut mina = Character::new("Mina");
        mina.appearance = "a young woman with short black hair".into();
        mina.default_clothing = "a red raincoat".into();
        mina.trigger_words = vec!["m1na_style".into()];
        let mut jun = Character::new("준");
        jun.trigger_words = vec!["jun_lora".into(), "m1na_style".into()];
        let mut look = CinematicOption::new("Noir");
        look.look.style = "photorealistic".into();
        look.look.environment = "a rainy Seoul alley at night".into();
        look.look.camera_body = "Arri Alexa 35".into();
        look.look.focal_length = "35mm".into();
        look.look.lens_type = "anamorphic".into();
        look.look.film_stock = "Kodak Vision3 500T".into();
        look.look.lighting_style = "low key".into();
        look.look.lighting_source = "neon".into();
        look.look.atmosphere = "tense".into();
        look.look.lens_filter = "Black Pro-Mist 1/4".into();
        look.look.aspect_ratio = "2.39:1".into();
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
                header_map: Default::default(),
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
        let look = &mut project.cinematics[0].look;
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
    fn a_shot_s_own_look_values_win_over_its_linked_look() {
        let (mut project, mut shot) = project();
        shot.look.camera_body = "Sony FX6".into();
        shot.look.lens_filter = "none".into();
        shot.look.environment = "a rooftop at dawn".into();
        project.shots = vec![shot.clone()];
        let text = shot_prompt(&project, &shot).text;
        assert!(
            text.contains("captured with Sony FX6, 35mm anamorphic lens"),
            "{text}"
        );
        assert!(text.contains("set in a rooftop at dawn"), "{text}");
        assert!(
            !text.contains("Pro-Mist"),
            "'none' blanks the look's filter: {text}"
        );
        assert!(
            text.contains("Kodak Vision3 500T"),
            "the rest comes from the look: {text}"
        );
    }

    #[test]
    fn a_flat_shot_with_no_linked_look_renders_its_own_values() {
        let (mut project, mut shot) = project();
        shot.cinematic = None;
        shot.look.style = "anime".into();
        shot.look.camera_body = "Arri Alexa 35".into();
        shot.look.focal_length = "50mm".into();
        shot.look.film_stock = "Kodak Portra 400".into();
        shot.look.lighting_source = "neon".into();
        shot.look.atmosphere = "melancholic".into();
        shot.look.aspect_ratio = "2.39:1".into();
        shot.scene = "Mina walks into the alley as the rain starts".into();
        project.shots = vec![shot.clone()];
        let text = shot_prompt(&project, &shot).text;
        assert_eq!(
            text,
            "anime image of a young woman with short black hair wearing a red raincoat and 준, \
runs toward the camera, captured with Arri Alexa 35, 50mm lens, Kodak Portra 400, neon lighting, \
melancholic, aspect ratio 2.39:1, m1na_style, jun_lora"
        );
        assert!(
            !text.contains("set in"),
            "a scene description is not an environment: {text}"
        );
    }

    #[test]
    fn a_value_s_closing_punctuation_does_not_stand_before_a_comma() {
        let (mut project, mut shot) = project();
        shot.action = "Mina steps into the alley.\nShe stops under the sign. ".into();
        project.shots = vec![shot.clone()];
        let text = shot_prompt(&project, &shot).text;
        assert!(
            text.contains(", Mina steps into the alley. She stops under the sign, set in"),
            "{text}"
        );
        assert!(!text.contains(".,"), "{text}");
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

    #[test]
    fn parts_say_where_each_value_came_from() {
        let (mut project, mut shot) = project();
        shot.look.camera_body = "Sony FX6".into();
        shot.look.atmosphere = "none".into();
        project.shots = vec![shot.clone()];
        let parts = prompt_parts(&project, &shot);
        let part = |name: &str| parts.iter().find(|p| p.placeholder == name).unwrap();
        assert_eq!(part("camera").value, "Sony FX6");
        assert_eq!(part("camera").source, Source::Shot);
        assert_eq!(part("lens").source, Source::Look("Noir".into()));
        assert_eq!(
            part("atmosphere").source,
            Source::Empty,
            "the shot blanked it"
        );
        assert_eq!(part("action").source, Source::Shot);
        assert_eq!(
            part("triggers").source,
            Source::Characters(vec!["Mina".into(), "준".into()])
        );
        assert_eq!(part("triggers").value, "m1na_style, jun_lora");
        let order: Vec<&str> = parts.iter().map(|p| p.placeholder.as_str()).collect();
        assert_eq!(&order[..3], ["style", "subject", "action"]);
    }
}
