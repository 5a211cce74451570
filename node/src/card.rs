//! The built-in `card` renderer: a storyboard placeholder frame for a shot, drawn on
//! the CPU, with no ComfyUI and no GPU.
//!
//! A card lets a mesh without a GPU plan, test and demo the whole pipeline: the job
//! runner renders one where a real workflow would run, and the take is stored and
//! reviewed like any other. It is never passed off as AI output. The image carries a
//! visible band saying [`LABEL`], and the PNG carries `tEXt` chunks
//! (`Software=reelmesh card`, `reelmesh:kind=card`, `Title=<shot code>`, ...).
//!
//! Data flow: [`spec_for_shot`] turns a shot of a [`Project`] into a [`CardSpec`]
//! (plain strings: code, action, character names, camera line, aspect, timing,
//! prompt, seed); [`render`] lays those out at the shot's aspect ratio in the
//! embedded Hangul font ([`reelmesh_ui::fonts::HANGUL_TTF`]), rasterizes them with
//! `ab_glyph` onto an RGB buffer and encodes an 8-bit RGB PNG. Rendering is
//! deterministic, so the same spec gives the same bytes and the same blob hash; the
//! seed tints the background slightly so that takes differ.

pub(crate) mod text;

use ab_glyph::FontRef;
use reelmesh_protocol::model::{Look, Project, Shot};
use reelmesh_protocol::prompt::is_blank;
use reelmesh_protocol::timecode::Timecode;
use reelmesh_ui::fonts::HANGUL_TTF;
use serde::{Deserialize, Serialize};

use text::{Canvas, PxRect, Rgb};

/// The workflow id of the built-in card renderer.
pub const WORKFLOW_ID: &str = "card";

/// The label every card carries, in the image and in its PNG metadata.
pub const LABEL: &str = "STORYBOARD CARD · not AI-generated";

/// The `Software` value of a card's PNG.
pub const SOFTWARE: &str = "reelmesh card";

/// The aspect ratio used when none is given or it cannot be read (16:9).
pub const DEFAULT_ASPECT: f64 = 16.0 / 9.0;

/// The smallest edge a card has, in pixels.
pub const MIN_EDGE: u32 = 16;

/// The largest long edge [`render`] accepts, in pixels (8K; a square card that
/// size is 192 MiB of pixels while it is drawn).
pub const MAX_LONG_EDGE: u32 = 8192;

/// The narrowest and widest aspect ratios [`aspect_of`] returns.
const ASPECT_RANGE: (f64, f64) = (0.2, 5.0);

/// How many characters of one metadata value go into the PNG.
const MAX_METADATA_CHARS: usize = 1000;

/// What a card shows: plain strings, already resolved from the project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSpec {
    /// Project name.
    pub project: String,
    /// Shot code (`SHT-00001`).
    pub code: String,
    /// Scene description.
    pub scene: String,
    /// What happens in the shot.
    pub action: String,
    /// Character names, in billing order.
    pub characters: Vec<String>,
    /// Camera line (`Arri Alexa · 35mm anamorphic · ...`).
    pub camera: String,
    /// Aspect ratio as written (`2.39:1`); blank means 16:9.
    pub aspect_ratio: String,
    /// Timing line (`48 f · 2.0 s · 00:00:01:00–00:00:03:00`).
    pub timing: String,
    /// The assembled prompt, drawn small at the bottom.
    pub prompt: String,
    /// Varies the background tint slightly so that takes differ; deterministic.
    pub seed: u64,
}

/// A rendered card: PNG bytes and the image size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The encoded PNG (8-bit RGB).
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Why a card could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The embedded font did not parse (a broken build).
    #[error("the embedded card font could not be read: {0}")]
    Font(#[from] ab_glyph::InvalidFont),
    /// The requested size is beyond [`MAX_LONG_EDGE`].
    #[error("a card {long_edge} px on its long edge is too large (at most {max} px)")]
    TooLarge {
        /// The long edge asked for.
        long_edge: u32,
        /// The largest long edge accepted.
        max: u32,
    },
    /// PNG encoding failed.
    #[error("encoding the card png failed: {0}")]
    Encode(#[from] png::EncodingError),
}

/// The aspect ratio (width / height) written in `text`: `16:9`, `2.39:1`, `2.39`,
/// ` 16 : 9 `, `16x9`, `16/9`. Blank or unreadable text gives 16:9; the result is
/// clamped to 0.2..=5.
#[must_use]
pub fn aspect_of(text: &str) -> f64 {
    let trimmed = text.trim();
    let number = |part: &str| -> Option<f64> {
        part.trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value > 0.0)
    };
    let ratio = match trimmed.split_once([':', 'x', 'X', '×', '/']) {
        Some((width, height)) => number(width).zip(number(height)).map(|(w, h)| w / h),
        None => number(trimmed),
    };
    match ratio {
        Some(ratio) if ratio.is_finite() && ratio > 0.0 => {
            ratio.clamp(ASPECT_RANGE.0, ASPECT_RANGE.1)
        }
        _ => DEFAULT_ASPECT,
    }
}

/// The pixel size of a card with `aspect_ratio` and `long_edge` pixels on its long
/// side (width for landscape, height for portrait); no edge is below [`MIN_EDGE`].
fn dimensions(aspect_ratio: &str, long_edge: u32) -> Result<(u32, u32), CardError> {
    if long_edge > MAX_LONG_EDGE {
        return Err(CardError::TooLarge {
            long_edge,
            max: MAX_LONG_EDGE,
        });
    }
    let long = long_edge.max(MIN_EDGE);
    let aspect = aspect_of(aspect_ratio);
    let short =
        |ratio: f64| -> u32 { ((f64::from(long) / ratio).round() as u32).clamp(MIN_EDGE, long) };
    Ok(if aspect >= 1.0 {
        (long, short(aspect))
    } else {
        (short(1.0 / aspect), long)
    })
}

/// The card spec for `shot` of `project`: character names from the linked ids, the
/// camera line and aspect ratio from the shot's look (its own values over its
/// cinematic option's), and the timing
/// from its frame count and its place on the project timeline.
#[must_use]
pub fn spec_for_shot(project: &Project, shot: &Shot, prompt: &str, seed: u64) -> CardSpec {
    let characters = shot
        .characters
        .iter()
        .filter_map(|character_id| project.character(character_id))
        .map(|character| character.name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    let look = project.effective_look(shot);
    let aspect_ratio = Some(look.aspect_ratio.trim())
        .filter(|aspect| !is_blank(aspect))
        .unwrap_or("16:9")
        .to_owned();
    let start = project
        .shots
        .iter()
        .position(|candidate| candidate.shot_id == shot.shot_id)
        .and_then(|index| project.shot_frame_ranges().get(index).map(|range| range.0))
        .unwrap_or(0);
    CardSpec {
        project: project.settings.name.clone(),
        code: shot.code.to_string(),
        scene: shot.scene.clone(),
        action: shot.action.clone(),
        characters,
        camera: camera_line(&look),
        aspect_ratio,
        timing: timing_line(project, start, shot.frame_count),
        prompt: prompt.to_owned(),
        seed,
    }
}

/// `Arri Alexa · 35mm anamorphic · Kodak Vision3 500T · Rembrandt neon lighting`,
/// leaving out empty parts.
fn camera_line(option: &Look) -> String {
    let words = |parts: &[&str]| -> String {
        parts
            .iter()
            .map(|part| part.trim())
            .filter(|part| !is_blank(part))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lighting = words(&[&option.lighting_style, &option.lighting_source]);
    let lowered = lighting.to_lowercase();
    if !lighting.is_empty() && !lowered.ends_with("light") && !lowered.ends_with("lighting") {
        lighting.push_str(" lighting");
    }
    [
        words(&[&option.camera_body]),
        words(&[&option.focal_length, &option.lens_type]),
        words(&[&option.film_stock]),
        lighting,
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join(" · ")
}

/// `48 f · 2.0 s · 00:00:01:00–00:00:03:00`: length in frames and seconds, then
/// timecode in (inclusive) and out (exclusive) at the project frame rate.
fn timing_line(project: &Project, start: u64, frame_count: u64) -> String {
    let rate = project.settings.frame_rate;
    let seconds = rate.frames_to_seconds(frame_count);
    let seconds = if seconds < 1.0 {
        format!("{seconds:.2}")
    } else {
        format!("{seconds:.1}")
    };
    let timecode_in = Timecode::from_frames(start, rate);
    let timecode_out = Timecode::from_frames(start.saturating_add(frame_count), rate);
    format!("{frame_count} f · {seconds} s · {timecode_in}–{timecode_out}")
}

/// Renders the card for `spec` with `long_edge` pixels on its long side (clamped up
/// to [`MIN_EDGE`]) and encodes it as PNG.
///
/// # Errors
/// [`CardError::TooLarge`] beyond [`MAX_LONG_EDGE`]; font and encoding errors do not
/// happen with valid builds but are reported rather than panicking.
pub fn render(spec: &CardSpec, long_edge: u32) -> Result<Card, CardError> {
    let (width, height) = dimensions(&spec.aspect_ratio, long_edge)?;
    let font = FontRef::try_from_slice(HANGUL_TTF)?;
    let (canvas, _) = paint(&font, spec, width, height);
    let png = encode(&canvas, spec)?;
    Ok(Card { png, width, height })
}

/// The colours of one card.
struct Palette {
    background: Rgb,
    ink: Rgb,
    muted: Rgb,
    rule: Rgb,
    band: Rgb,
    band_ink: Rgb,
}

/// SplitMix64: a well-mixed 64-bit hash of the seed, stable across platforms.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Paper-coloured background, shifted by up to ±8 per channel by the seed.
fn palette(seed: u64) -> Palette {
    let hash = mix(seed);
    let base: Rgb = [236, 232, 222];
    let mut background = base;
    for (index, channel) in background.iter_mut().enumerate() {
        let offset = ((hash >> (index * 8)) & 0xFF) % 17;
        // 0..=16 maps to -8..=8.
        *channel = (u32::from(*channel) + offset as u32)
            .saturating_sub(8)
            .min(255) as u8;
    }
    Palette {
        background,
        ink: [28, 28, 34],
        muted: [96, 96, 104],
        rule: [150, 146, 138],
        band: [40, 40, 48],
        band_ink: [246, 244, 238],
    }
}

/// Where the main text blocks ended up (the tests look for ink there).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "read by the tests that check for ink")
)]
struct Regions {
    code: PxRect,
    action: PxRect,
}

/// Type sizes and spacing of one card, all derived from its size.
struct Metrics {
    /// Label band, row names and the prompt.
    small: f32,
    /// Scene and row values.
    meta: f32,
    /// The action.
    body: f32,
    /// The shot code.
    big: f32,
    /// Frame and rule thickness.
    thickness: f32,
    /// Space above and below a rule.
    rule_gap: f32,
}

impl Metrics {
    fn of(w: f32, h: f32) -> Self {
        let unit = ((w * h).sqrt() / 36.0).max(1.0);
        Self {
            small: unit * 0.6,
            meta: unit * 0.8,
            body: unit * 1.2,
            big: unit * 2.2,
            thickness: (w.min(h) / 320.0).round().max(1.0),
            rule_gap: (unit * 0.45).round().max(1.0),
        }
    }
}

/// The height of one line of `px` text.
fn line(px: f32) -> f32 {
    px * 1.3
}

/// A card being drawn: the canvas, its colours and sizes, and the content box.
struct Painter<'f> {
    font: &'f FontRef<'f>,
    canvas: Canvas,
    colors: Palette,
    sizes: Metrics,
    /// Left and right edge of the content.
    x0: f32,
    x1: f32,
    /// Where text may be drawn: everything inside the frame below the band.
    clip: PxRect,
}

impl Painter<'_> {
    fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    /// Draws `text` in `px` with its top at `top`, from `x`, clipped to the content.
    fn text(&mut self, px: f32, (x, top): (f32, f32), text: &str, color: Rgb) {
        let baseline = top + text::ascent(self.font, px);
        text::draw_text(
            &mut self.canvas,
            self.font,
            px,
            (x, baseline),
            text,
            color,
            self.clip,
        );
    }

    /// A rule across the content from `y` down.
    fn rule(&mut self, y: f32) {
        let rect = PxRect::from_f32(self.x0, y, self.x1, y + self.sizes.thickness);
        self.canvas.fill(rect, self.colors.rule);
    }

    /// The shot code and the scene under it, then a rule; returns where the code is
    /// and the first y below the rule.
    fn header(&mut self, spec: &CardSpec, top: f32) -> (PxRect, f32) {
        let (big, meta, x0) = (self.sizes.big, self.sizes.meta, self.x0);
        let mut y = top;
        let code = text::fit_line(self.font, big, spec.code.trim(), self.width());
        self.text(big, (x0, y), &code, self.colors.ink);
        let code_region = PxRect::from_f32(x0, y, self.x1, y + big * 1.15);
        y += big * 1.15;
        if !spec.scene.trim().is_empty() {
            let scene = text::fit_line(self.font, meta, spec.scene.trim(), self.width());
            self.text(meta, (x0, y), &scene, self.colors.muted);
            y += line(meta);
        }
        y += self.sizes.rule_gap;
        self.rule(y);
        (code_region, y + self.sizes.thickness + self.sizes.rule_gap)
    }

    /// The prompt (up to three small lines) ending at `bottom`, with a rule above it;
    /// returns the y above the rule (`bottom` when there is no prompt).
    fn prompt(&mut self, spec: &CardSpec, bottom: f32) -> f32 {
        let small = self.sizes.small;
        let prompt = text::clean(spec.prompt.trim(), false);
        let lines = text::wrap(self.font, small, &prompt, self.width(), 3);
        if lines.is_empty() {
            return bottom;
        }
        let mut y = bottom - line(small) * lines.len() as f32;
        for (index, prompt_line) in lines.iter().enumerate() {
            let top = y + line(small) * index as f32;
            self.text(small, (self.x0, top), prompt_line, self.colors.muted);
        }
        y -= self.sizes.rule_gap + self.sizes.thickness;
        self.rule(y);
        y - self.sizes.rule_gap
    }

    /// Timing, camera and cast rows, drawn bottom up from `bottom`; returns the top
    /// of the cast row.
    fn rows(&mut self, spec: &CardSpec, bottom: f32) -> f32 {
        let (small, meta) = (self.sizes.small, self.sizes.meta);
        let cast = spec
            .characters
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        // Cast and camera may take two lines; timing is short.
        let rows = [
            ("TIMING", spec.timing.trim(), 1),
            ("CAMERA", spec.camera.trim(), 2),
            ("CAST", cast.as_str(), 2),
        ];
        let label_column = rows
            .iter()
            .map(|(name, _, _)| text::text_width(self.font, small, name))
            .fold(0.0_f32, f32::max)
            + meta * 0.8;
        let value_width = (self.width() - label_column).max(0.0);
        let mut y = bottom;
        for (name, value, max_lines) in rows {
            let value = text::clean(if value.is_empty() { "—" } else { value }, false);
            let value_lines = text::wrap(self.font, meta, &value, value_width, max_lines);
            y -= line(meta) * value_lines.len().max(1) as f32;
            // The name sits on the first value line's baseline.
            let baseline = y + text::ascent(self.font, meta);
            let name_top = baseline - text::ascent(self.font, small);
            self.text(small, (self.x0, name_top), name, self.colors.muted);
            for (index, value_line) in value_lines.iter().enumerate() {
                let top = y + line(meta) * index as f32;
                self.text(
                    meta,
                    (self.x0 + label_column, top),
                    value_line,
                    self.colors.ink,
                );
            }
        }
        y
    }

    /// The action between `top` and `bottom`, as many lines as fit; returns its box.
    fn action(&mut self, spec: &CardSpec, top: f32, bottom: f32) -> PxRect {
        let body = self.sizes.body;
        let room = (bottom - top).max(0.0);
        let max_lines = (room / line(body)).floor() as usize;
        let action = text::clean(spec.action.trim(), true);
        let lines = text::wrap(self.font, body, &action, self.width(), max_lines);
        for (index, action_line) in lines.iter().enumerate() {
            let line_top = top + line(body) * index as f32;
            self.text(body, (self.x0, line_top), action_line, self.colors.ink);
        }
        PxRect::from_f32(self.x0, top, self.x1, bottom.max(top))
    }
}

/// Draws the frame and the label band (with the project name at the right) on a
/// fresh canvas; returns the canvas, the inner frame and the band height.
fn frame_and_band(
    font: &FontRef<'_>,
    spec: &CardSpec,
    colors: &Palette,
    sizes: &Metrics,
    (w, h): (f32, f32),
) -> (Canvas, PxRectF, f32) {
    let mut canvas = Canvas::new(w as u32, h as u32, colors.background);
    let inset = (w.min(h) * 0.02).round();
    let thickness = sizes.thickness;
    let frame = PxRect::from_f32(inset, inset, w - inset, h - inset);
    canvas.stroke(frame, thickness as i32, colors.ink);
    let inner = PxRectF {
        x0: inset + thickness,
        y0: inset + thickness,
        x1: w - inset - thickness,
        y1: h - inset - thickness,
    };

    let small = sizes.small;
    let band_height = small * 1.9;
    let band = PxRect::from_f32(inner.x0, inner.y0, inner.x1, inner.y0 + band_height);
    canvas.fill(band, colors.band);
    let band_pad = small * 0.8;
    let baseline = inner.y0 + (band_height - small) / 2.0 + text::ascent(font, small);
    let band_text_width = (inner.x1 - inner.x0 - 2.0 * band_pad).max(0.0);
    let label = text::fit_line(font, small, LABEL, band_text_width);
    let label_width = text::draw_text(
        &mut canvas,
        font,
        small,
        (inner.x0 + band_pad, baseline),
        &label,
        colors.band_ink,
        band,
    );
    let project_room = band_text_width - label_width - 2.0 * band_pad;
    if project_room > small * 3.0 && !spec.project.trim().is_empty() {
        let project = text::fit_line(font, small, spec.project.trim(), project_room);
        let project_width = text::text_width(font, small, &project);
        text::draw_text(
            &mut canvas,
            font,
            small,
            (inner.x1 - band_pad - project_width, baseline),
            &project,
            colors.band_ink,
            band,
        );
    }
    (canvas, inner, band_height)
}

/// A rectangle in fractional pixels.
#[derive(Debug, Clone, Copy)]
struct PxRectF {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

/// Lays out and rasterizes `spec` on a `width` × `height` canvas.
///
/// From the top: the label band (with the project name at the right), the shot
/// code, the scene, a rule, then the action filling the middle; from the bottom:
/// the prompt (up to three small lines) under a rule, above it timing, camera and
/// cast. Text that does not fit is cut with `…`; on tiny canvases blocks overlap or
/// vanish rather than fail.
fn paint(font: &FontRef<'_>, spec: &CardSpec, width: u32, height: u32) -> (Canvas, Regions) {
    let colors = palette(spec.seed);
    let (w, h) = (width as f32, height as f32);
    let sizes = Metrics::of(w, h);
    let (canvas, inner, band_height) = frame_and_band(font, spec, &colors, &sizes, (w, h));
    let pad = (w.min(h) * 0.035).max(1.0);
    let (top, bottom) = (inner.y0 + band_height + pad * 0.8, inner.y1 - pad);
    let rule_gap = sizes.rule_gap;
    let mut painter = Painter {
        font,
        canvas,
        colors,
        sizes,
        x0: inner.x0 + pad,
        x1: inner.x1 - pad,
        clip: PxRect::from_f32(inner.x0, inner.y0 + band_height, inner.x1, inner.y1),
    };
    let (code, action_top) = painter.header(spec, top);
    let above_prompt = painter.prompt(spec, bottom);
    let above_rows = painter.rows(spec, above_prompt);
    let action = painter.action(spec, action_top, above_rows - rule_gap);
    (painter.canvas, Regions { code, action })
}

/// Encodes `canvas` as an 8-bit RGB PNG with the card's text chunks.
fn encode(canvas: &Canvas, spec: &CardSpec) -> Result<Vec<u8>, CardError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, canvas.width, canvas.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let chunks = [
            ("Software", SOFTWARE.to_owned()),
            ("reelmesh:kind", WORKFLOW_ID.to_owned()),
            ("Title", spec.code.clone()),
            ("Description", LABEL.to_owned()),
            ("reelmesh:project", spec.project.clone()),
            ("reelmesh:seed", spec.seed.to_string()),
        ];
        for (keyword, value) in chunks {
            add_text(&mut encoder, keyword, &value)?;
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&canvas.pixels)?;
        writer.finish()?;
    }
    Ok(bytes)
}

/// Adds `keyword=value` as `tEXt` when `value` is Latin-1, else as UTF-8 `iTXt`.
/// Control characters become spaces and long values are cut.
fn add_text(
    encoder: &mut png::Encoder<'_, &mut Vec<u8>>,
    keyword: &str,
    value: &str,
) -> Result<(), CardError> {
    let value: String = text::clean(value.trim(), false)
        .chars()
        .take(MAX_METADATA_CHARS)
        .collect();
    if value.chars().all(|c| u32::from(c) <= 0xFF) {
        encoder.add_text_chunk(keyword.to_owned(), value)?;
    } else {
        encoder.add_itxt_chunk(keyword.to_owned(), value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ab_glyph::Font;
    use reelmesh_protocol::model::{Character, CinematicOption, ProjectSettings, ShotCode};
    use reelmesh_protocol::timecode::FrameRate;
    use std::collections::BTreeMap;

    const KOREAN_ACTION: &str = "주인공이 비 내리는 골목에서 문을 연다";

    fn font() -> FontRef<'static> {
        FontRef::try_from_slice(HANGUL_TTF).unwrap()
    }

    fn korean_spec() -> CardSpec {
        CardSpec {
            project: "한강의 밤 (Han River Night)".to_owned(),
            code: "SHT-00012".to_owned(),
            scene: "S#3 골목 — 밤, 비".to_owned(),
            action: KOREAN_ACTION.to_owned(),
            characters: vec!["민지".to_owned(), "한강".to_owned()],
            camera: "Arri Alexa · 35mm anamorphic · Kodak Vision3 500T · Rembrandt neon lighting"
                .to_owned(),
            aspect_ratio: "16:9".to_owned(),
            timing: "48 f · 2.0 s · 00:00:01:00–00:00:03:00".to_owned(),
            prompt: "cinematic still, a young woman opens a door in a rainy alley at night, \
                     neon reflections, Arri Alexa, 35mm anamorphic, Kodak Vision3 500T"
                .to_owned(),
            seed: 7,
        }
    }

    struct Decoded {
        width: u32,
        height: u32,
        pixels: Vec<u8>,
        text: BTreeMap<String, String>,
    }

    fn decode(bytes: &[u8]) -> Decoded {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        pixels.truncate(frame.buffer_size());
        let info = reader.info();
        let mut text = BTreeMap::new();
        for chunk in &info.uncompressed_latin1_text {
            text.insert(chunk.keyword.clone(), chunk.text.clone());
        }
        for chunk in &info.utf8_text {
            text.insert(chunk.keyword.clone(), chunk.get_text().unwrap());
        }
        Decoded {
            width: info.width,
            height: info.height,
            pixels,
            text,
        }
    }

    /// Pixels in `rect` that differ clearly from `background`.
    fn ink_in(decoded: &Decoded, rect: PxRect, background: Rgb) -> usize {
        let mut count = 0;
        for y in rect.y0.max(0)..rect.y1.min(decoded.height as i32) {
            for x in rect.x0.max(0)..rect.x1.min(decoded.width as i32) {
                let index = (y as usize * decoded.width as usize + x as usize) * 3;
                let distance: u32 = decoded.pixels[index..index + 3]
                    .iter()
                    .zip(background)
                    .map(|(&a, b)| u32::from(a.abs_diff(b)))
                    .sum();
                if distance > 60 {
                    count += 1;
                }
            }
        }
        count
    }

    #[test]
    fn the_font_has_every_korean_glyph_and_the_separators() {
        let font = font();
        let samples = [
            KOREAN_ACTION,
            "민지",
            "한강",
            "가각힣",
            "STORYBOARD CARD · not AI-generated",
        ];
        for sample in samples {
            for c in sample.chars() {
                assert_ne!(font.glyph_id(c).0, 0, "no glyph for {c:?} in {sample:?}");
            }
        }
        for c in [text::ELLIPSIS, '·', '–', '—'] {
            assert_ne!(font.glyph_id(c).0, 0, "no glyph for {c:?}");
        }
        // Every precomposed syllable.
        let missing = ('가'..='힣').filter(|&c| font.glyph_id(c).0 == 0).count();
        assert_eq!(missing, 0);
    }

    #[test]
    fn cards_have_the_shot_aspect_and_carry_their_label() {
        for (aspect, width, height) in [
            ("16:9", 1280, 720),
            ("2.39:1", 1280, 536),
            ("9:16", 720, 1280),
            ("", 1280, 720),
        ] {
            let spec = CardSpec {
                aspect_ratio: aspect.to_owned(),
                ..korean_spec()
            };
            let card = render(&spec, 1280).unwrap();
            assert_eq!((card.width, card.height), (width, height), "{aspect}");
            let decoded = decode(&card.png);
            assert_eq!((decoded.width, decoded.height), (width, height), "{aspect}");
            assert_eq!(decoded.pixels.len(), width as usize * height as usize * 3);
            assert_eq!(decoded.text["Software"], "reelmesh card");
            assert_eq!(decoded.text["reelmesh:kind"], "card");
            assert_eq!(decoded.text["Title"], "SHT-00012");
            assert_eq!(decoded.text["Description"], LABEL);
            assert_eq!(decoded.text["reelmesh:seed"], "7");
            // Hangul does not fit Latin-1, so the project name goes in as iTXt.
            assert_eq!(
                decoded.text["reelmesh:project"],
                "한강의 밤 (Han River Night)"
            );
        }
        // The Latin-1 chunks really are tEXt.
        let decoded = decode(&render(&korean_spec(), 640).unwrap().png);
        assert_eq!(decoded.width, 640);
        let bytes = render(&korean_spec(), 640).unwrap().png;
        let needle = b"tEXtreelmesh:kind\0card";
        assert!(bytes.windows(needle.len()).any(|window| window == needle));
    }

    #[test]
    fn text_areas_have_ink_and_the_label_band_is_there() {
        let font = font();
        let spec = korean_spec();
        let (canvas, regions) = paint(&font, &spec, 1280, 720);
        let card = render(&spec, 1280).unwrap();
        let decoded = decode(&card.png);
        assert_eq!(decoded.pixels, canvas.pixels);
        let background = palette(spec.seed).background;
        let code_ink = ink_in(&decoded, regions.code, background);
        let action_ink = ink_in(&decoded, regions.action, background);
        assert!(code_ink > 1000, "code region ink {code_ink}");
        assert!(action_ink > 1000, "action region ink {action_ink}");
        // A card with nothing to say has no ink there.
        let empty = CardSpec {
            code: String::new(),
            action: String::new(),
            ..spec
        };
        let (canvas, regions) = paint(&font, &empty, 1280, 720);
        let decoded = Decoded {
            width: 1280,
            height: 720,
            pixels: canvas.pixels,
            text: BTreeMap::new(),
        };
        assert_eq!(ink_in(&decoded, regions.code, background), 0);
        assert_eq!(ink_in(&decoded, regions.action, background), 0);
        // The top-left corner inside the frame is the dark label band.
        let index = (30 * 1280 + 640) * 3;
        assert_eq!(&decoded.pixels[index..index + 3], &palette(7).band);
    }

    #[test]
    fn same_spec_same_bytes_other_action_or_seed_other_bytes() {
        let spec = korean_spec();
        let first = render(&spec, 960).unwrap();
        let second = render(&spec, 960).unwrap();
        assert_eq!(first, second);

        let other_action = CardSpec {
            action: "민지가 우산을 접고 한강 다리 위를 달린다".to_owned(),
            ..spec.clone()
        };
        let other = render(&other_action, 960).unwrap();
        assert_ne!(other.png, first.png);
        let font = font();
        let (a, _) = paint(&font, &spec, 960, 540);
        let (b, _) = paint(&font, &other_action, 960, 540);
        assert_ne!(a.pixels, b.pixels);

        for seed in [0, 1, 8, u64::MAX] {
            let reseeded = CardSpec {
                seed,
                ..spec.clone()
            };
            let take = render(&reseeded, 960).unwrap();
            assert_ne!(take.png, first.png, "seed {seed}");
            let (c, _) = paint(&font, &reseeded, 960, 540);
            assert_ne!(c.pixels, a.pixels, "seed {seed}: same pixels");
        }
    }

    #[test]
    fn long_hangul_without_spaces_wraps_between_characters_and_is_cut() {
        let font = font();
        let long: String = KOREAN_ACTION
            .chars()
            .filter(|c| !c.is_whitespace())
            .cycle()
            .take(2000)
            .collect();
        let px = 26.0;
        let max_width = 900.0;
        let lines = text::wrap(&font, px, &long, max_width, 8);
        assert_eq!(lines.len(), 8);
        for line in &lines {
            let width = text::text_width(&font, px, line);
            assert!(width <= max_width + 0.01, "{width} > {max_width}: {line}");
            // Lines are full: another syllable would not fit.
            assert!(width > max_width - px * 1.5, "{width}: {line}");
        }
        assert!(lines[..7].iter().all(|line| !line.contains(text::ELLIPSIS)));
        assert!(lines[7].ends_with(text::ELLIPSIS));

        // Spaces: break at spaces, never inside a word that fits.
        let words = "민지 한강 골목 우산 ".repeat(200);
        let lines = text::wrap(&font, px, &words, 300.0, 5);
        assert_eq!(lines.len(), 5);
        for line in &lines[..4] {
            assert!(text::text_width(&font, px, line) <= 300.01);
            for word in line.split(' ') {
                assert!(["민지", "한강", "골목", "우산"].contains(&word), "{word:?}");
            }
        }
        assert!(lines[4].ends_with(text::ELLIPSIS));

        // Text that fits is not cut.
        let lines = text::wrap(&font, px, KOREAN_ACTION, 2000.0, 3);
        assert_eq!(lines, [KOREAN_ACTION]);
        let lines = text::wrap(&font, px, "첫 줄\n둘째 줄\n\n", 2000.0, 3);
        assert_eq!(lines, ["첫 줄", "둘째 줄"]);
        let lines = text::wrap(&font, px, "첫 줄\n둘째 줄\n셋째", 2000.0, 2);
        assert_eq!(lines, ["첫 줄", "둘째 줄…"]);
        assert!(text::wrap(&font, px, KOREAN_ACTION, 2000.0, 0).is_empty());

        // And the whole card renders.
        let spec = CardSpec {
            action: long,
            ..korean_spec()
        };
        let card = render(&spec, 1280).unwrap();
        assert_eq!((card.width, card.height), (1280, 720));
    }

    #[test]
    fn hostile_input_never_panics() {
        let emoji = "🎬🎥🙂‍↔️👩🏽‍🚀 ".repeat(50);
        let control = "\u{0}\u{7}\t\r\n\u{1b}[31m\u{7f}\u{85}\u{200b}\u{feff}";
        let huge = "x".repeat(200_000);
        let spec = CardSpec {
            project: control.repeat(10),
            code: format!("{emoji}{control}"),
            scene: huge.clone(),
            action: format!("{emoji}{control}{huge}"),
            characters: vec![String::new(), emoji.clone(), control.to_owned()],
            camera: "\n\n\n".to_owned(),
            aspect_ratio: "garbage".to_owned(),
            timing: emoji,
            prompt: huge,
            seed: u64::MAX,
        };
        for long_edge in [0, 1, 15, 16, 17, 64, 333, 1280] {
            for aspect in [
                "", "0:0", "1:0", "100:1", "1:100", "9:16", "-3:2", "NaN", "inf",
            ] {
                let spec = CardSpec {
                    aspect_ratio: aspect.to_owned(),
                    ..spec.clone()
                };
                let card = render(&spec, long_edge).unwrap();
                assert!(card.width >= MIN_EDGE && card.height >= MIN_EDGE);
                assert_eq!(card.width.max(card.height), long_edge.max(MIN_EDGE));
                let decoded = decode(&card.png);
                assert_eq!((decoded.width, decoded.height), (card.width, card.height));
            }
        }
        let empty = render(&CardSpec::default(), 0).unwrap();
        assert_eq!((empty.width, empty.height), (MIN_EDGE, MIN_EDGE));
        let err = render(&CardSpec::default(), MAX_LONG_EDGE + 1).unwrap_err();
        assert!(matches!(err, CardError::TooLarge { .. }));
        assert_eq!(
            err.to_string(),
            "a card 8193 px on its long edge is too large (at most 8192 px)"
        );
        // Title chunk with Hangul goes in as iTXt; control characters are spaces.
        let spec = CardSpec {
            code: "장면\u{0}1".to_owned(),
            ..CardSpec::default()
        };
        let decoded = decode(&render(&spec, 64).unwrap().png);
        assert_eq!(decoded.text["Title"], "장면 1");
    }

    #[test]
    fn aspect_ratios_parse_leniently() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let cases: &[(&str, f64)] = &[
            ("16:9", 16.0 / 9.0),
            ("2.39:1", 2.39),
            ("2.39", 2.39),
            ("1.85:1", 1.85),
            ("4:3", 4.0 / 3.0),
            ("9:16", 9.0 / 16.0),
            ("1:1", 1.0),
            (" 16 : 9 ", 16.0 / 9.0),
            ("16x9", 16.0 / 9.0),
            ("16/9", 16.0 / 9.0),
            ("2.76 : 1", 2.76),
            ("", DEFAULT_ASPECT),
            ("   ", DEFAULT_ASPECT),
            ("wide", DEFAULT_ASPECT),
            ("16:", DEFAULT_ASPECT),
            (":9", DEFAULT_ASPECT),
            ("0:0", DEFAULT_ASPECT),
            ("1:0", DEFAULT_ASPECT),
            ("0", DEFAULT_ASPECT),
            ("-16:9", DEFAULT_ASPECT),
            ("NaN", DEFAULT_ASPECT),
            ("inf", DEFAULT_ASPECT),
            ("1e400:1", DEFAULT_ASPECT),
            ("16:9:1", DEFAULT_ASPECT),
            ("100:1", 5.0),
            ("1:100", 0.2),
            ("1e-300", 0.2),
        ];
        for &(text, expected) in cases {
            let got = aspect_of(text);
            assert!(close(got, expected), "{text:?}: {got} != {expected}");
        }
        assert_eq!(dimensions("2.39:1", 1280).unwrap(), (1280, 536));
        assert_eq!(dimensions("1.85:1", 1920).unwrap(), (1920, 1038));
        assert_eq!(dimensions("9:16", 1280).unwrap(), (720, 1280));
        assert_eq!(dimensions("1:1", 0).unwrap(), (16, 16));
        assert_eq!(dimensions("5:1", 20).unwrap(), (20, 16));
    }

    fn project_with(shots: Vec<Shot>, character: Character, option: CinematicOption) -> Project {
        Project {
            project_id: "p1".to_owned(),
            settings: ProjectSettings {
                name: "한강의 밤".to_owned(),
                frame_rate: FrameRate::Fps24,
                prompt_template: String::new(),
                header_map: BTreeMap::new(),
            },
            shots,
            characters: vec![character],
            cinematics: vec![option],
            catalog_additions: BTreeMap::new(),
        }
    }

    #[test]
    fn spec_for_shot_resolves_names_camera_aspect_and_timing() {
        let minji = Character::new("민지");
        let option = CinematicOption {
            look: Look {
                camera_body: "Arri Alexa".to_owned(),
                focal_length: "35mm".to_owned(),
                lens_type: "anamorphic".to_owned(),
                film_stock: "Kodak Vision3 500T".to_owned(),
                lighting_source: "neon".to_owned(),
                lighting_style: "Rembrandt".to_owned(),
                aspect_ratio: " 2.39:1 ".to_owned(),
                ..Look::default()
            },
            ..CinematicOption::new("Noir")
        };
        let first = Shot::new(ShotCode(1), 24);
        let mut second = Shot::new(ShotCode(2), 48);
        second.action = KOREAN_ACTION.to_owned();
        second.scene = "골목".to_owned();
        second.characters = vec![minji.character_id.clone(), "dangling".to_owned()];
        second.cinematic = Some(option.cinematic_id.clone());
        let project = project_with(vec![first.clone(), second.clone()], minji, option);

        let spec = spec_for_shot(&project, &second, "the prompt", 42);
        assert_eq!(spec.project, "한강의 밤");
        assert_eq!(spec.code, "SHT-00002");
        assert_eq!(spec.scene, "골목");
        assert_eq!(spec.action, KOREAN_ACTION);
        assert_eq!(spec.characters, ["민지"]);
        assert_eq!(
            spec.camera,
            "Arri Alexa · 35mm anamorphic · Kodak Vision3 500T · Rembrandt neon lighting"
        );
        assert_eq!(spec.aspect_ratio, "2.39:1");
        assert_eq!(spec.timing, "48 f · 2.0 s · 00:00:01:00–00:00:03:00");
        assert_eq!(spec.prompt, "the prompt");
        assert_eq!(spec.seed, 42);

        // A shot's own values win over its look's.
        let mut own = second.clone();
        own.look.camera_body = "Sony FX6".to_owned();
        own.look.aspect_ratio = "16:9".to_owned();
        let spec = spec_for_shot(&project, &own, "", 0);
        assert!(
            spec.camera.starts_with("Sony FX6 · 35mm anamorphic"),
            "{}",
            spec.camera
        );
        assert_eq!(spec.aspect_ratio, "16:9");

        // The first shot has no look: 16:9, no camera line, starts at zero.
        let spec = spec_for_shot(&project, &first, "", 0);
        assert_eq!(spec.aspect_ratio, "16:9");
        assert_eq!(spec.camera, "");
        assert!(spec.characters.is_empty());
        assert_eq!(spec.timing, "24 f · 1.0 s · 00:00:00:00–00:00:01:00");

        // Empty parts leave no stray separators.
        for (option, expected) in [
            (
                Look {
                    focal_length: " ".to_owned(),
                    lens_type: "anamorphic".to_owned(),
                    lighting_source: "neon".to_owned(),
                    ..Look::default()
                },
                "anamorphic · neon lighting",
            ),
            (
                Look {
                    camera_body: "RED V-Raptor".to_owned(),
                    lighting_source: "natural light".to_owned(),
                    ..Look::default()
                },
                "RED V-Raptor · natural light",
            ),
            (
                Look {
                    film_stock: "Kodak Vision3 500T".to_owned(),
                    ..Look::default()
                },
                "Kodak Vision3 500T",
            ),
            (Look::default(), ""),
        ] {
            let line = camera_line(&option);
            assert_eq!(line, expected);
            assert!(!line.starts_with(" ·") && !line.ends_with("· ") && !line.contains("·  ·"));
        }

        // Drop-frame timecode and a shot not in the project.
        let mut project = project;
        project.settings.frame_rate = FrameRate::Fps29_97Df;
        let spec = spec_for_shot(&project, &second, "", 0);
        assert_eq!(spec.timing, "48 f · 1.6 s · 00:00:00;24–00:00:02;12");
        let stray = Shot::new(ShotCode(9), 12);
        let spec = spec_for_shot(&project, &stray, "", 0);
        assert_eq!(spec.timing, "12 f · 0.40 s · 00:00:00;00–00:00:00;12");
    }
}
