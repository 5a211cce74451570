//! The storyboard PDF: A4 landscape pages of frames, 3 × 3 (or 2 × 3 large), each
//! frame the shot's take (a clip's first frame, read with ffmpeg) with its code,
//! timecode, action, characters and notes under it, in Hangul (NanumSquare is
//! embedded, subset, with its ToUnicode map so the text can be searched and
//! copied). Written with krilla.

use std::path::Path;

use ab_glyph::{Font as _, FontRef};
use anyhow::{Context, Result};
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use reelmesh_protocol::model::Project;
use reelmesh_protocol::publish::Cut;
use reelmesh_protocol::timecode::Timecode;

use crate::card::text as layout;

/// How many frames a page holds.
pub use reelmesh_protocol::publish::PageLayout as Layout;

const PAGE: (f32, f32) = (842.0, 595.0);
const MARGIN: f32 = 32.0;
const GAP: f32 = 14.0;
const HEADER: f32 = 22.0;

/// What each frame shows besides its picture.
struct Frame<'a> {
    code: &'a str,
    timecode: String,
    action: &'a str,
    characters: String,
    notes: &'a str,
    picture: Option<Image>,
    missing: &'static str,
}

/// Write the storyboard of `project` (its cut `cut`, media relative to `base`) to
/// `out`.
///
/// # Errors
/// The font or a picture cannot be read, the file cannot be written.
pub fn write(
    project: &Project,
    cut: &Cut,
    base: &Path,
    out: &Path,
    layout_kind: Layout,
) -> Result<usize> {
    let ttf = reelmesh_ui::fonts::HANGUL_TTF;
    let font = Font::new(ttf.into(), 0).context("the embedded font")?;
    let measure = FontRef::try_from_slice(ttf).context("the embedded font")?;
    let rate = cut.rate;
    let mut at = 0_u64;
    let mut frames = Vec::with_capacity(cut.clips.len());
    for (clip, shot) in cut.clips.iter().zip(&project.shots) {
        let (picture, missing) = match &clip.media {
            Some(media) => picture(&base.join(&media.path), media.still),
            None => (None, "no take"),
        };
        frames.push(Frame {
            code: &clip.code,
            timecode: format!(
                "{} – {}",
                Timecode::from_frames(at, rate),
                Timecode::from_frames(at + clip.frames, rate)
            ),
            action: &clip.action,
            characters: shot
                .characters
                .iter()
                .filter_map(|id| project.character(id).map(|c| c.name.clone()))
                .collect::<Vec<_>>()
                .join(", "),
            notes: &shot.notes,
            picture,
            missing,
        });
        at += clip.frames;
    }
    let (rows, cols) = layout_kind.rows_cols();
    let per_page = rows * cols;
    let pages = frames.len().div_ceil(per_page).max(1);
    let mut document = Document::new();
    let page_size = PageSettings::from_wh(PAGE.0, PAGE.1).context("page size")?;
    for (index, chunk) in frames.chunks(per_page).enumerate() {
        let mut page = document.start_page_with(page_size.clone());
        let mut surface = page.surface();
        let pen = Pen {
            font: &font,
            measure: &measure,
        };
        let title = format!(
            "{} · {} · {}",
            project.settings.name,
            rate.label(),
            format_args!("{} / {pages}", index + 1)
        );
        pen.text(&mut surface, (MARGIN, MARGIN + 10.0), 10.0, &title, grey());
        let cell_w = (PAGE.0 - 2.0 * MARGIN - GAP * (cols as f32 - 1.0)) / cols as f32;
        let cell_h = (PAGE.1 - 2.0 * MARGIN - HEADER - GAP * (rows as f32 - 1.0)) / rows as f32;
        for (i, frame) in chunk.iter().enumerate() {
            let (r, c) = (i / cols, i % cols);
            let x = MARGIN + c as f32 * (cell_w + GAP);
            let y = MARGIN + HEADER + r as f32 * (cell_h + GAP);
            pen.frame(&mut surface, frame, (x, y, cell_w, cell_h));
        }
        surface.finish();
        page.finish();
    }
    if frames.is_empty() {
        let mut page = document.start_page_with(page_size);
        let mut surface = page.surface();
        Pen {
            font: &font,
            measure: &measure,
        }
        .text(
            &mut surface,
            (MARGIN, MARGIN + 10.0),
            10.0,
            "no shots",
            grey(),
        );
        surface.finish();
        page.finish();
    }
    let bytes = document
        .finish()
        .map_err(|e| anyhow::anyhow!("writing the PDF: {e:?}"))?;
    crate::store::write_atomic(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(pages)
}

fn ink() -> rgb::Color {
    rgb::Color::new(20, 20, 24)
}

fn grey() -> rgb::Color {
    rgb::Color::new(110, 110, 118)
}

/// A frame's picture: the still, or a clip's first frame through ffmpeg; else why not.
fn picture(path: &Path, still: bool) -> (Option<Image>, &'static str) {
    let bytes = if still {
        std::fs::read(path).ok()
    } else {
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let Some(bytes) = bytes else {
        return (
            None,
            if still {
                "picture unreadable"
            } else {
                "clip (no ffmpeg to show a frame)"
            },
        );
    };
    let image = match sniff(&bytes) {
        Some("png") => Image::from_png(bytes.into(), true),
        Some("jpg") => Image::from_jpeg(bytes.into(), true),
        Some("webp") => Image::from_webp(bytes.into(), true),
        Some("gif") => Image::from_gif(bytes.into(), true),
        _ => Err("unknown".to_owned()),
    };
    match image {
        Ok(image) => (Some(image), ""),
        Err(_) => (None, "picture unreadable"),
    }
}

/// The picture format by its magic bytes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG") {
        Some("png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else if bytes.starts_with(b"GIF8") {
        Some("gif")
    } else {
        None
    }
}

struct Pen<'a> {
    font: &'a Font,
    measure: &'a FontRef<'a>,
}

impl Pen<'_> {
    /// ab_glyph's pixel scale for an em of `size` points (its scale is the font's
    /// height, not its em).
    fn px(&self, size: f32) -> f32 {
        let upem = self.measure.units_per_em().unwrap_or(1000.0);
        size * self.measure.height_unscaled() / upem
    }

    fn text(
        &self,
        surface: &mut Surface<'_>,
        (x, baseline): (f32, f32),
        size: f32,
        text: &str,
        color: rgb::Color,
    ) {
        surface.set_fill(Some(Fill {
            paint: color.into(),
            ..Fill::default()
        }));
        surface.draw_text(
            Point::from_xy(x, baseline),
            self.font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }

    /// `text` wrapped to `width` in at most `lines` lines; returns the next baseline.
    fn paragraph(
        &self,
        surface: &mut Surface<'_>,
        (x, baseline): (f32, f32),
        (size, width, lines): (f32, f32, usize),
        text: &str,
        color: rgb::Color,
    ) -> f32 {
        let mut y = baseline;
        let clean = layout::clean(text.trim(), false);
        for line in layout::wrap(self.measure, self.px(size), &clean, width, lines) {
            self.text(surface, (x, y), size, &line, color);
            y += size * 1.3;
        }
        y
    }

    fn frame(
        &self,
        surface: &mut Surface<'_>,
        frame: &Frame<'_>,
        (x, y, w, h): (f32, f32, f32, f32),
    ) {
        // The picture box: 16:9 of the cell's width, at most 62 % of its height.
        let box_h = (w * 9.0 / 16.0).min(h * 0.62);
        let box_w = w;
        match &frame.picture {
            Some(image) => {
                let (iw, ih) = image.size();
                let scale = (box_w / iw as f32).min(box_h / ih as f32);
                let (dw, dh) = (iw as f32 * scale, ih as f32 * scale);
                let (dx, dy) = (x + (box_w - dw) / 2.0, y + (box_h - dh) / 2.0);
                surface.push_transform(&Transform::from_translate(dx, dy));
                if let Some(size) = Size::from_wh(dw, dh) {
                    surface.draw_image(image.clone(), size);
                }
                surface.pop();
            }
            None => {
                self.text(
                    surface,
                    (x + 8.0, y + box_h / 2.0),
                    9.0,
                    frame.missing,
                    grey(),
                );
            }
        }
        // The frame's outline.
        if let Some(rect) = Rect::from_xywh(x, y, box_w, box_h) {
            let mut pb = PathBuilder::new();
            pb.push_rect(rect);
            if let Some(path) = pb.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: grey().into(),
                    width: 0.6,
                    opacity: NormalizedF32::ONE,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
                surface.set_stroke(None);
            }
        }
        let mut baseline = y + box_h + 12.0;
        self.text(surface, (x, baseline), 9.5, frame.code, ink());
        let code_w = layout::text_width(self.measure, self.px(9.5), frame.code);
        self.text(
            surface,
            (x + code_w + 8.0, baseline),
            7.5,
            &frame.timecode,
            grey(),
        );
        baseline += 11.5;
        let lines = if h > 200.0 { 3 } else { 2 };
        baseline = self.paragraph(surface, (x, baseline), (8.0, w, lines), frame.action, ink());
        if !frame.characters.is_empty() {
            baseline = self.paragraph(
                surface,
                (x, baseline),
                (7.0, w, 1),
                &frame.characters,
                grey(),
            );
        }
        if !frame.notes.trim().is_empty() && baseline < y + h {
            self.paragraph(surface, (x, baseline), (7.0, w, 1), frame.notes, grey());
        }
    }
}
