//! Fonts shipped inside the binary, so Hangul renders on a machine with no CJK
//! fonts installed (the first users write Korean).
//!
//! `NanumSquareR.ttf` (NAVER, SIL Open Font License 1.1, text in
//! `ui/assets/fonts/OFL.txt`) covers Latin and all 11,172 precomposed Hangul
//! syllables in 0.7 MiB. The editor registers it as a fallback family; the card
//! renderer in the node draws storyboard cards with it.

/// The bytes of NanumSquare Regular (TrueType).
pub const HANGUL_TTF: &[u8] = include_bytes!("../assets/fonts/NanumSquareR.ttf");

/// The font's name, for credits and the egui font table.
pub const HANGUL_FONT_NAME: &str = "NanumSquare";

/// Add NanumSquare after egui's own fonts in both families, so Latin keeps egui's
/// look and every Hangul syllable has a glyph.
pub fn install(ctx: &egui::Context) {
    use egui::{FontData, FontFamily, FontInsert, FontPriority, InsertFontFamily};
    let families = [FontFamily::Proportional, FontFamily::Monospace]
        .into_iter()
        .map(|family| InsertFontFamily {
            family,
            priority: FontPriority::Lowest,
        })
        .collect();
    ctx.add_font(FontInsert::new(
        HANGUL_FONT_NAME,
        FontData::from_static(HANGUL_TTF),
        families,
    ));
}

#[cfg(test)]
mod tests {
    use super::HANGUL_TTF;

    #[test]
    fn the_embedded_font_is_a_truetype_file() {
        // sfnt version 0x00010000 for TrueType outlines.
        assert_eq!(&HANGUL_TTF[..4], &[0, 1, 0, 0]);
        assert!(HANGUL_TTF.len() > 500_000);
    }
}
