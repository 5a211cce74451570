//! The cut as editors read it: CMX3600 EDL, OpenTimelineIO, FCPXML 1.10 and FCP7
//! XML (xmeml v4). Pure text from a [`Cut`]: which shots, in order, with their
//! lengths and the media file each points at. The node gathers the media and
//! writes the files (`reelmesh publish`).
//!
//! Times are whole frames at the project rate everywhere; each format spells them
//! its own way: EDL timecodes (`;` before the frames at drop-frame rates), OTIO
//! rational times at the exact rate (23.976 is 24000/1001), FCPXML rational
//! seconds (`1001/24000s` per frame), xmeml frame counts with a timebase and an
//! `ntsc` flag. The record timeline starts at 01:00:00:00, as editors expect.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::Project;
use crate::timecode::{FrameRate, Timecode};

/// How the storyboard PDF lays frames on an A4 landscape page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageLayout {
    /// Three rows of three (the default).
    #[default]
    Grid3x3,
    /// Two rows of three, larger frames.
    Large2x3,
}

impl PageLayout {
    /// (rows, columns).
    #[must_use]
    pub fn rows_cols(self) -> (usize, usize) {
        match self {
            PageLayout::Grid3x3 => (3, 3),
            PageLayout::Large2x3 => (2, 3),
        }
    }

    /// `3x3` / `2x3`, as the CLI spells them.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PageLayout::Grid3x3 => "3x3",
            PageLayout::Large2x3 => "2x3",
        }
    }
}

impl std::str::FromStr for PageLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('×', "x").as_str() {
            "3x3" => Ok(PageLayout::Grid3x3),
            "2x3" => Ok(PageLayout::Large2x3),
            other => Err(format!(
                "'{other}' is not a storyboard layout: use 3x3 or 2x3"
            )),
        }
    }
}

/// Choices a publish takes beyond the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOptions {
    /// The storyboard PDF's page layout.
    #[serde(default)]
    pub layout: PageLayout,
    /// Draw shot code, timecode and action on the animatic.
    #[serde(default = "yes")]
    pub burn_in: bool,
}

fn yes() -> bool {
    true
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            layout: PageLayout::Grid3x3,
            burn_in: true,
        }
    }
}

/// Where the record timeline starts: one hour, in frames of `rate`'s timecode.
#[must_use]
pub fn start_frame(rate: FrameRate) -> u64 {
    Timecode {
        hours: 1,
        minutes: 0,
        seconds: 0,
        frames: 0,
        drop_frame: rate.is_drop_frame(),
    }
    .to_frames(rate)
    .unwrap_or(0)
}

/// One shot on the cut.
#[derive(Debug, Clone, PartialEq)]
pub struct CutClip {
    /// `SHT-00001`.
    pub code: String,
    /// The shot's action (a note for readers of the cut).
    pub action: String,
    /// Length on the timeline, frames.
    pub frames: u64,
    /// The take it shows; `None` leaves a gap of its length.
    pub media: Option<CutMedia>,
}

/// A take's file as the cut points at it.
#[derive(Debug, Clone, PartialEq)]
pub struct CutMedia {
    /// File name (`SHT-00001_take2.mp4`).
    pub name: String,
    /// Where it is: a path relative to the published file, or absolute.
    pub path: String,
    /// An absolute `file://` URL of it (FCPXML and xmeml want one).
    pub url: String,
    /// Pixels (0: unknown).
    pub width: u64,
    /// Pixels (0: unknown).
    pub height: u64,
    /// A still (held for the clip's length) rather than a clip.
    pub still: bool,
    /// Frames the file holds (a still: the clip's length).
    pub frames: u64,
}

/// The cut: a title, the rate and the shots in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// The project's name.
    pub title: String,
    /// The project's rate.
    pub rate: FrameRate,
    /// The shots in timeline order.
    pub clips: Vec<CutClip>,
}

impl Cut {
    /// The cut of `project`, each shot's media given by `media`.
    pub fn of(
        project: &Project,
        mut media: impl FnMut(&crate::model::Shot) -> Option<CutMedia>,
    ) -> Cut {
        Cut {
            title: project.settings.name.clone(),
            rate: project.settings.frame_rate,
            clips: project
                .shots
                .iter()
                .map(|shot| CutClip {
                    code: shot.code.to_string(),
                    action: shot.action.clone(),
                    frames: shot.frame_count,
                    media: media(shot),
                })
                .collect(),
        }
    }

    /// Total length, frames.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.clips.iter().map(|c| c.frames).sum()
    }

    /// Each clip with its record start (frames from the timeline's start).
    fn placed(&self) -> impl Iterator<Item = (u64, &CutClip)> {
        self.clips.iter().scan(0_u64, |at, clip| {
            let start = *at;
            *at += clip.frames;
            Some((start, clip))
        })
    }
}

fn tc(frames: u64, rate: FrameRate) -> String {
    Timecode::from_frames(frames, rate).to_string()
}

/// The EDL reel name of a shot: at most 8 characters, letters and digits
/// (`SHT-00012` → `SHT00012`).
#[must_use]
pub fn reel_name(code: &str) -> String {
    let mut reel: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    reel.truncate(8);
    if reel.is_empty() {
        "AX".to_owned()
    } else {
        reel
    }
}

/// A CMX3600 EDL of the cut: one video event per shot (a shot without a take is a
/// black event `BL`), source timecodes from the start of each file, the clip's
/// name and file in `* FROM CLIP NAME:` / `* FROM FILE:` comments.
#[must_use]
pub fn edl(cut: &Cut) -> String {
    let rate = cut.rate;
    let mut out = String::new();
    // EDL titles are ASCII by convention: keep what is, mark what is not.
    let title: String = cut
        .title
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let _ = writeln!(out, "TITLE: {title}");
    let fcm = if rate.is_drop_frame() {
        "DROP FRAME"
    } else {
        "NON-DROP FRAME"
    };
    let _ = writeln!(out, "FCM: {fcm}");
    out.push('\n');
    let start = start_frame(rate);
    for (event, (at, clip)) in cut.placed().enumerate() {
        let reel = match clip.media {
            Some(_) => reel_name(&clip.code),
            None => "BL".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:03}  {reel:<8} V     C        {} {} {} {}",
            event + 1,
            tc(0, rate),
            tc(clip.frames, rate),
            tc(start + at, rate),
            tc(start + at + clip.frames, rate),
        );
        if let Some(media) = &clip.media {
            let _ = writeln!(out, "* FROM CLIP NAME: {}", media.name);
            // Where the file is (Nucoda and Resolve write this; OTIO reads it as the media).
            let _ = writeln!(out, "* FROM FILE: {}", media.path);
        }
        let _ = writeln!(out, "* COMMENT: {}", clip.code);
        out.push('\n');
    }
    out
}

/// An OTIO rational time at the project rate.
fn rt(value: u64, rate: FrameRate) -> serde_json::Value {
    serde_json::json!({
        "OTIO_SCHEMA": "RationalTime.1",
        "rate": otio_rate(rate),
        "value": value as f64,
    })
}

fn range(start: u64, duration: u64, rate: FrameRate) -> serde_json::Value {
    serde_json::json!({
        "OTIO_SCHEMA": "TimeRange.1",
        "start_time": rt(start, rate),
        "duration": rt(duration, rate),
    })
}

/// OTIO's rate: frames per second as a float (23.976 is 24000/1001 exactly).
fn otio_rate(rate: FrameRate) -> f64 {
    let (num, den) = rate.rational();
    f64::from(num) / f64::from(den)
}

/// The cut as OpenTimelineIO JSON: a Timeline whose Stack holds one video Track of
/// Clips (each with an ExternalReference to its file) and Gaps. Clips are written
/// as `Clip.1` (one `media_reference`): every OTIO reads it (0.15 and later
/// upgrade it to `Clip.2` on load), and so do importers built on older OTIO.
#[must_use]
pub fn otio(cut: &Cut) -> String {
    let rate = cut.rate;
    let children: Vec<serde_json::Value> = cut
        .clips
        .iter()
        .map(|clip| match &clip.media {
            Some(media) => serde_json::json!({
                "OTIO_SCHEMA": "Clip.1",
                "name": clip.code,
                "source_range": range(0, clip.frames, rate),
                "media_reference": {
                    "OTIO_SCHEMA": "ExternalReference.1",
                    "name": media.name,
                    "target_url": media.path,
                    "available_range": range(0, media.frames.max(clip.frames), rate),
                    "metadata": {},
                },
                "metadata": { "reelmesh": { "code": clip.code, "action": clip.action, "still": media.still } },
                "effects": [],
                "markers": [],
                "enabled": true,
            }),
            None => serde_json::json!({
                "OTIO_SCHEMA": "Gap.1",
                "name": format!("{} (no take)", clip.code),
                "source_range": range(0, clip.frames, rate),
                "metadata": { "reelmesh": { "code": clip.code, "action": clip.action } },
                "effects": [],
                "markers": [],
                "enabled": true,
            }),
        })
        .collect();
    let timeline = serde_json::json!({
        "OTIO_SCHEMA": "Timeline.1",
        "name": cut.title,
        "metadata": {},
        "global_start_time": rt(start_frame(rate), rate),
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "name": "tracks",
            "metadata": {},
            "effects": [],
            "markers": [],
            "enabled": true,
            "source_range": null,
            "children": [{
                "OTIO_SCHEMA": "Track.1",
                "name": "V1",
                "kind": "Video",
                "metadata": {},
                "effects": [],
                "markers": [],
                "enabled": true,
                "source_range": null,
                "children": children,
            }],
        },
    });
    serde_json::to_string_pretty(&timeline).unwrap_or_default()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `frames` at `rate` as FCPXML rational seconds (`3003/24000s`, `3s`).
#[must_use]
pub fn fcpxml_time(frames: u64, rate: FrameRate) -> String {
    let (num, den) = rate.rational();
    // One frame lasts den/num seconds: frames·den/num, reduced.
    let top = frames * u64::from(den);
    let bottom = u64::from(num);
    let g = gcd(top, bottom);
    let (top, bottom) = (top / g.max(1), bottom / g.max(1));
    if top == 0 {
        "0s".to_owned()
    } else if bottom == 1 {
        format!("{top}s")
    } else {
        format!("{top}/{bottom}s")
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The frame duration FCPXML formats declare (`1001/24000s`, `1/25s`).
fn frame_duration(rate: FrameRate) -> String {
    let (num, den) = rate.rational();
    format!("{den}/{num}s")
}

/// The picture size the cut declares: the first take's, else 1920×1080.
fn picture(cut: &Cut) -> (u64, u64) {
    cut.clips
        .iter()
        .filter_map(|c| c.media.as_ref())
        .find(|m| m.width > 0 && m.height > 0)
        .map_or((1920, 1080), |m| (m.width, m.height))
}

/// The cut as FCPXML 1.10 (Final Cut Pro; DaVinci Resolve reads 1.3-1.10): one
/// format, an asset per take file with its `media-rep`, and a sequence whose spine
/// holds an `asset-clip` per shot with a take and a `gap` per shot without.
#[must_use]
pub fn fcpxml(cut: &Cut) -> String {
    let rate = cut.rate;
    let (width, height) = picture(cut);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE fcpxml>\n");
    out.push_str("<fcpxml version=\"1.10\">\n  <resources>\n");
    let _ = writeln!(
        out,
        "    <format id=\"r1\" name=\"FFVideoFormat{height}p{}\" frameDuration=\"{}\" width=\"{width}\" height=\"{height}\"/>",
        rate.as_str().replace(['.', 'd', 'f'], ""),
        frame_duration(rate)
    );
    for (i, clip) in cut.clips.iter().enumerate() {
        if let Some(media) = &clip.media {
            let _ = writeln!(
                out,
                "    <asset id=\"a{}\" name=\"{}\" start=\"0s\" duration=\"{}\" hasVideo=\"1\" format=\"r1\"{}>\n      <media-rep kind=\"original-media\" src=\"{}\"/>\n    </asset>",
                i + 1,
                xml_escape(&media.name),
                fcpxml_time(media.frames.max(clip.frames), rate),
                if media.still {
                    " videoSources=\"1\""
                } else {
                    ""
                },
                xml_escape(&media.url),
            );
        }
    }
    out.push_str("  </resources>\n  <library>\n");
    let _ = writeln!(out, "    <event name=\"{}\">", xml_escape(&cut.title));
    let _ = writeln!(out, "      <project name=\"{}\">", xml_escape(&cut.title));
    let _ = writeln!(
        out,
        "        <sequence format=\"r1\" duration=\"{}\" tcStart=\"{}\" tcFormat=\"{}\">\n          <spine>",
        fcpxml_time(cut.frames(), rate),
        fcpxml_time(start_frame(rate), rate),
        if rate.is_drop_frame() { "DF" } else { "NDF" }
    );
    for (i, (at, clip)) in cut.placed().enumerate() {
        let offset = fcpxml_time(start_frame(rate) + at, rate);
        let duration = fcpxml_time(clip.frames, rate);
        match &clip.media {
            Some(_) => {
                let _ = writeln!(
                    out,
                    "            <asset-clip ref=\"a{}\" name=\"{}\" offset=\"{offset}\" duration=\"{duration}\" start=\"0s\" tcFormat=\"{}\"/>",
                    i + 1,
                    xml_escape(&clip.code),
                    if rate.is_drop_frame() { "DF" } else { "NDF" }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "            <gap name=\"{}\" offset=\"{offset}\" duration=\"{duration}\" start=\"0s\"/>",
                    xml_escape(&format!("{} (no take)", clip.code))
                );
            }
        }
    }
    out.push_str("          </spine>\n        </sequence>\n      </project>\n    </event>\n  </library>\n</fcpxml>\n");
    out
}

/// xmeml's `<rate>`: the integer timebase and whether it runs at 1000/1001 of it.
fn xmeml_rate(rate: FrameRate) -> String {
    let (num, den) = rate.rational();
    let ntsc = den == 1001;
    let timebase = if ntsc { num / 1000 } else { num / den };
    format!(
        "<rate><timebase>{timebase}</timebase><ntsc>{}</ntsc></rate>",
        if ntsc { "TRUE" } else { "FALSE" }
    )
}

/// The cut as Final Cut Pro 7 XML (xmeml version 4), which Premiere Pro imports:
/// one sequence with its duration, rate (timebase + `ntsc`) and timecode, one video
/// track of clip items, each with its file; shots without a take leave a gap.
#[must_use]
pub fn xmeml(cut: &Cut) -> String {
    let rate = cut.rate;
    let r = xmeml_rate(rate);
    let (width, height) = picture(cut);
    let start = start_frame(rate);
    let mut out = String::new();
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE xmeml>\n<xmeml version=\"4\">\n",
    );
    let _ = writeln!(
        out,
        "  <sequence id=\"sequence-1\">\n    <name>{}</name>\n    <duration>{}</duration>\n    {r}\n    <timecode>\n      {r}\n      <string>{}</string>\n      <frame>{start}</frame>\n      <displayformat>{}</displayformat>\n    </timecode>",
        xml_escape(&cut.title),
        cut.frames(),
        tc(start, rate),
        if rate.is_drop_frame() { "DF" } else { "NDF" }
    );
    let _ = writeln!(
        out,
        "    <media>\n      <video>\n        <format>\n          <samplecharacteristics>\n            {r}\n            <width>{width}</width>\n            <height>{height}</height>\n          </samplecharacteristics>\n        </format>\n        <track>"
    );
    for (i, (at, clip)) in cut.placed().enumerate() {
        let Some(media) = &clip.media else { continue };
        let n = i + 1;
        let _ = writeln!(
            out,
            "          <clipitem id=\"clipitem-{n}\">\n            <name>{}</name>\n            <duration>{}</duration>\n            {r}\n            <start>{at}</start>\n            <end>{}</end>\n            <in>0</in>\n            <out>{}</out>\n            <file id=\"file-{n}\">\n              <name>{}</name>\n              <pathurl>{}</pathurl>\n              {r}\n              <duration>{}</duration>\n              <media>\n                <video>\n                  <samplecharacteristics>\n                    <width>{}</width>\n                    <height>{}</height>\n                  </samplecharacteristics>\n                </video>\n              </media>\n            </file>\n          </clipitem>",
            xml_escape(&clip.code),
            media.frames.max(clip.frames),
            at + clip.frames,
            clip.frames,
            xml_escape(&media.name),
            xml_escape(&media.url),
            media.frames.max(clip.frames),
            if media.width > 0 { media.width } else { width },
            if media.height > 0 {
                media.height
            } else {
                height
            },
        );
    }
    out.push_str("        </track>\n      </video>\n    </media>\n  </sequence>\n</xmeml>\n");
    out
}

#[cfg(test)]
mod tests;
