//! Text for cards: cleaning user text, measuring it, wrapping it to a width, and
//! rasterizing it onto an RGB canvas.
//!
//! There is no shaping engine here on purpose: the card font (NanumSquare) has one
//! glyph per precomposed Hangul syllable and per Latin letter, so a char-to-glyph
//! map with kerning is enough for a placeholder frame. Everything is computed in the
//! same order every time, so the same text gives the same pixels.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

/// The character that marks cut text.
pub(crate) const ELLIPSIS: char = '…';

/// At most this many chars of any one field are looked at; more would never fit a
/// card, and the cap keeps a pathological input from costing time.
const MAX_FIELD_CHARS: usize = 20_000;

/// An RGB colour.
pub(crate) type Rgb = [u8; 3];

/// A pixel rectangle, `x0..x1` by `y0..y1` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PxRect {
    pub(crate) x0: i32,
    pub(crate) y0: i32,
    pub(crate) x1: i32,
    pub(crate) y1: i32,
}

impl PxRect {
    /// The rectangle spanning two float corners, rounded to whole pixels.
    pub(crate) fn from_f32(x0: f32, y0: f32, x1: f32, y1: f32) -> PxRect {
        PxRect {
            x0: x0.round() as i32,
            y0: y0.round() as i32,
            x1: x1.round() as i32,
            y1: y1.round() as i32,
        }
    }

    /// Whether the pixel `(x, y)` lies inside.
    fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1
    }
}

/// An 8-bit RGB image in row-major order.
pub(crate) struct Canvas {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `background`.
    pub(crate) fn new(width: u32, height: u32, background: Rgb) -> Canvas {
        let count = width as usize * height as usize;
        let mut pixels = Vec::with_capacity(count * 3);
        for _ in 0..count {
            pixels.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// The whole canvas as a rectangle.
    pub(crate) fn bounds(&self) -> PxRect {
        PxRect {
            x0: 0,
            y0: 0,
            x1: self.width as i32,
            y1: self.height as i32,
        }
    }

    /// Fills `rect` (clipped to the canvas) with `color`.
    pub(crate) fn fill(&mut self, rect: PxRect, color: Rgb) {
        let x0 = rect.x0.clamp(0, self.width as i32) as usize;
        let x1 = rect.x1.clamp(0, self.width as i32) as usize;
        let y0 = rect.y0.clamp(0, self.height as i32) as usize;
        let y1 = rect.y1.clamp(0, self.height as i32) as usize;
        let stride = self.width as usize * 3;
        for y in y0..y1 {
            let row = y * stride;
            for pixel in self.pixels[row + x0 * 3..row + x1 * 3].chunks_exact_mut(3) {
                pixel.copy_from_slice(&color);
            }
        }
    }

    /// Draws the outline of `rect`, `thickness` pixels wide, inside it.
    pub(crate) fn stroke(&mut self, rect: PxRect, thickness: i32, color: Rgb) {
        let t = thickness.max(1);
        let (x0, y0, x1, y1) = (rect.x0, rect.y0, rect.x1, rect.y1);
        self.fill(
            PxRect {
                x0,
                y0,
                x1,
                y1: y0 + t,
            },
            color,
        );
        self.fill(
            PxRect {
                x0,
                y0: y1 - t,
                x1,
                y1,
            },
            color,
        );
        self.fill(
            PxRect {
                x0,
                y0,
                x1: x0 + t,
                y1,
            },
            color,
        );
        self.fill(
            PxRect {
                x0: x1 - t,
                y0,
                x1,
                y1,
            },
            color,
        );
    }

    /// Blends `color` over the pixel `(x, y)` with `coverage` (0..=1) as alpha, if the
    /// pixel is inside both the canvas and `clip`.
    fn blend(&mut self, x: i32, y: i32, coverage: f32, color: Rgb, clip: PxRect) {
        if !clip.contains(x, y) || !self.bounds().contains(x, y) {
            return;
        }
        let alpha = coverage.clamp(0.0, 1.0);
        if alpha <= 0.0 {
            return;
        }
        let index = (y as usize * self.width as usize + x as usize) * 3;
        for (channel, &ink) in self.pixels[index..index + 3].iter_mut().zip(&color) {
            let under = f32::from(*channel);
            let mixed = under + (f32::from(ink) - under) * alpha;
            *channel = mixed.round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// `text` with control characters turned into spaces (newlines kept only when
/// `keep_newlines`), invisible format characters dropped, and the length capped.
pub(crate) fn clean(text: &str, keep_newlines: bool) -> String {
    let mut cleaned = String::with_capacity(text.len().min(MAX_FIELD_CHARS * 4));
    for c in text.chars().take(MAX_FIELD_CHARS) {
        match c {
            '\n' if keep_newlines => cleaned.push('\n'),
            // Zero-width spaces and joiners, bidi marks, word joiner, BOM, variation
            // selectors: nothing to draw, and the font has no glyph for them.
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' => {}
            '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' => {}
            c if c.is_control() => cleaned.push(' '),
            c => cleaned.push(c),
        }
    }
    cleaned
}

/// Running width of a line being built, kerning included, so that a wrapped line's
/// width is exactly what [`text_width`] measures for it.
#[derive(Clone, Copy)]
struct Caret<'a, 'f> {
    font: &'a FontRef<'f>,
    scale: PxScale,
    width: f32,
    previous: Option<GlyphId>,
}

impl<'a, 'f> Caret<'a, 'f> {
    fn new(font: &'a FontRef<'f>, px: f32) -> Caret<'a, 'f> {
        Caret {
            font,
            scale: PxScale::from(px),
            width: 0.0,
            previous: None,
        }
    }

    /// The width after `c` would be added.
    fn peek(&self, c: char) -> f32 {
        let scaled = self.font.as_scaled(self.scale);
        let id = scaled.glyph_id(c);
        let kern = self
            .previous
            .map_or(0.0, |previous| scaled.kern(previous, id));
        self.width + kern + scaled.h_advance(id)
    }

    /// Adds `c`.
    fn push(&mut self, c: char) {
        self.width = self.peek(c);
        self.previous = Some(self.font.glyph_id(c));
    }
}

/// The advance width of `text` on one line at `px` pixels.
pub(crate) fn text_width(font: &FontRef<'_>, px: f32, text: &str) -> f32 {
    let mut caret = Caret::new(font, px);
    for c in text.chars() {
        caret.push(c);
    }
    caret.width
}

/// Wraps `text` into at most `max_lines` lines no wider than `max_width` pixels at
/// `px` pixels.
///
/// Lines break at whitespace; a word wider than a line (a Korean sentence written
/// without spaces, a URL) is also broken between characters. `\n` starts a new line.
/// When the text does not fit, the last line ends with `…`.
pub(crate) fn wrap(
    font: &FontRef<'_>,
    px: f32,
    text: &str,
    max_width: f32,
    max_lines: usize,
) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    if max_lines == 0 {
        return lines;
    }
    let mut cut = false;
    'paragraphs: for paragraph in text.split('\n') {
        if lines.len() >= max_lines {
            if paragraph.chars().all(char::is_whitespace) {
                continue;
            }
            cut = true;
            break;
        }
        let mut line = String::new();
        let mut caret = Caret::new(font, px);
        for word in paragraph
            .split(char::is_whitespace)
            .filter(|w| !w.is_empty())
        {
            if !line.is_empty() {
                if fits_after(caret, ' ', word, max_width) {
                    line.push(' ');
                    caret.push(' ');
                    for c in word.chars() {
                        caret.push(c);
                    }
                    line.push_str(word);
                    continue;
                }
                lines.push(std::mem::take(&mut line));
                caret = Caret::new(font, px);
                if lines.len() >= max_lines {
                    cut = true;
                    break 'paragraphs;
                }
            }
            // The line is empty: lay the word down, breaking between characters
            // where it is wider than the line.
            for c in word.chars() {
                if !line.is_empty() && caret.peek(c) > max_width {
                    lines.push(std::mem::take(&mut line));
                    caret = Caret::new(font, px);
                    if lines.len() >= max_lines {
                        cut = true;
                        break 'paragraphs;
                    }
                }
                line.push(c);
                caret.push(c);
            }
        }
        lines.push(line);
    }
    while lines.last().is_some_and(String::is_empty) && !cut {
        lines.pop();
    }
    if let Some(last) = lines.last_mut().filter(|_| cut) {
        ellipsize(font, px, last, max_width);
    }
    lines
}

/// Whether `separator` followed by `word` still fits on a line already `caret` wide.
/// Stops measuring as soon as it does not.
fn fits_after(mut caret: Caret<'_, '_>, separator: char, word: &str, max_width: f32) -> bool {
    caret.push(separator);
    for c in word.chars() {
        caret.push(c);
        if caret.width > max_width {
            return false;
        }
    }
    true
}

/// Shortens `line` until it fits `max_width` with `…` at its end, and adds the `…`.
fn ellipsize(font: &FontRef<'_>, px: f32, line: &mut String, max_width: f32) {
    let ellipsis_width = text_width(font, px, &ELLIPSIS.to_string());
    while !line.is_empty() && text_width(font, px, line) + ellipsis_width > max_width {
        line.pop();
    }
    // No dangling separator before the mark: "a · b ·…" reads as "a · b…".
    let kept = line
        .trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, '·' | ',' | ';' | ':' | '–' | '—')
        })
        .len();
    line.truncate(kept);
    line.push(ELLIPSIS);
}

/// The single line `text` becomes in `max_width` pixels (cut with `…`), with line
/// breaks and control characters turned into spaces.
pub(crate) fn fit_line(font: &FontRef<'_>, px: f32, text: &str, max_width: f32) -> String {
    let cleaned = clean(text, false);
    wrap(font, px, &cleaned, max_width, 1)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// How far the font's ascent reaches above the baseline at `px` pixels.
pub(crate) fn ascent(font: &FontRef<'_>, px: f32) -> f32 {
    font.as_scaled(PxScale::from(px)).ascent()
}

/// Rasterizes `text` on one line with its baseline at `(x, baseline)`, blending
/// glyph coverage in `color`, drawing only inside `clip`. Returns the advance width.
pub(crate) fn draw_text(
    canvas: &mut Canvas,
    font: &FontRef<'_>,
    px: f32,
    (x, baseline): (f32, f32),
    text: &str,
    color: Rgb,
    clip: PxRect,
) -> f32 {
    let scale = PxScale::from(px);
    let scaled = font.as_scaled(scale);
    let mut caret = x;
    let mut previous: Option<GlyphId> = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            caret += scaled.kern(previous, id);
        }
        if !c.is_whitespace() {
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                let visible = bounds.max.x >= clip.x0 as f32
                    && bounds.min.x < clip.x1 as f32
                    && bounds.max.y >= clip.y0 as f32
                    && bounds.min.y < clip.y1 as f32;
                if visible {
                    let left = bounds.min.x as i32;
                    let top = bounds.min.y as i32;
                    outlined.draw(|gx, gy, coverage| {
                        canvas.blend(
                            left.saturating_add(gx as i32),
                            top.saturating_add(gy as i32),
                            coverage,
                            color,
                            clip,
                        );
                    });
                }
            }
        }
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    caret - x
}
