//! The animatic: the cut as one H.264 MP4 at the project rate, no audio, each shot
//! exactly its length in frames (a still held, a clip trimmed or its last frame
//! held, black with the shot code where there is no take), optionally with the
//! shot code, timecode and action burnt in (NanumSquare, so Hangul shows).
//!
//! Through ffmpeg (the Debian package): each shot becomes a segment of exactly its
//! frames with the same size, rate and encoder settings, then the segments are
//! joined without re-encoding (the concat demuxer). Frame counts are exact because
//! every segment is cut with `-frames:v`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use reelmesh_protocol::publish::Cut;
use reelmesh_protocol::timecode::{FrameRate, Timecode};

/// How the animatic looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnimaticOptions {
    /// Shot code, timecode and action drawn on the picture.
    pub burn_in: bool,
}

impl Default for AnimaticOptions {
    fn default() -> Self {
        AnimaticOptions { burn_in: true }
    }
}

/// Encode `cut` (its media paths relative to `base`) to `out`, calling `progress`
/// with (shots done, shots) as it goes.
///
/// # Errors
/// ffmpeg missing or failing (its own message), a folder that cannot be written.
pub fn encode(
    cut: &Cut,
    base: &Path,
    out: &Path,
    options: AnimaticOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("reelmesh-animatic-")
        .tempdir()
        .context("a temporary folder for the segments")?;
    let font = work.path().join("NanumSquareR.ttf");
    std::fs::write(&font, reelmesh_ui::fonts::HANGUL_TTF).context("writing the burn-in font")?;
    let (width, height) = size(cut);
    let rate = cut.rate;
    let mut list = String::new();
    let mut at = reelmesh_protocol::publish::start_frame(rate);
    let total = cut.clips.len();
    for (i, clip) in cut.clips.iter().enumerate() {
        let segment = work.path().join(format!("{i:05}.mp4"));
        let mut command = Command::new("ffmpeg");
        command.args(["-y", "-loglevel", "error"]);
        let (num, den) = rate.rational();
        let fps = format!("{num}/{den}");
        match &clip.media {
            Some(media) if media.still => {
                command.arg("-i").arg(base.join(&media.path));
            }
            Some(media) => {
                command.arg("-i").arg(base.join(&media.path));
            }
            None => {
                command.args(["-f", "lavfi", "-i"]);
                command.arg(format!("color=c=black:s={width}x{height}:r={fps}"));
            }
        }
        let fit = format!(
            "scale={width}:{height}:force_original_aspect_ratio=decrease,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1"
        );
        // A still is read and fitted once, then held; a clip is resampled to the
        // rate and its last frame held.
        let mut filter = match &clip.media {
            Some(media) if media.still => format!("{fit},{}", super::hold_still(&fps)),
            _ => format!("fps={fps},{fit},tpad=stop_mode=clone:stop=-1"),
        };
        if options.burn_in || clip.media.is_none() {
            let _ = write!(
                filter,
                ",{}",
                burn_in(work.path(), i, &clip.code, &clip.action, at, rate, height)?
            );
        }
        command
            .args(["-vf", &filter, "-frames:v"])
            .arg(clip.frames.max(1).to_string())
            .args([
                "-r", &fps, "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                "-pix_fmt", "yuv420p",
            ])
            .arg(&segment);
        run(command, &clip.code)?;
        let _ = writeln!(list, "file '{}'", segment.display());
        at += clip.frames;
        progress(i + 1, total);
    }
    let list_file = work.path().join("segments.txt");
    std::fs::write(&list_file, list).context("writing the segment list")?;
    let mut join = Command::new("ffmpeg");
    join.args([
        "-y",
        "-loglevel",
        "error",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
    ])
    .arg(&list_file)
    .args(["-c", "copy", "-movflags", "+faststart"])
    .arg(out);
    run(join, "joining the segments")
}

/// The picture size: the first take's (even), else 1920×1080.
fn size(cut: &Cut) -> (u64, u64) {
    cut.clips
        .iter()
        .filter_map(|c| c.media.as_ref())
        .find(|m| m.width > 0 && m.height > 0)
        .map_or((1920, 1080), |m| (m.width / 2 * 2, m.height / 2 * 2))
}

/// Code and timecode at the top left and right (the timecode runs with the
/// picture), the action along the bottom. Texts go through files (`textfile`), so
/// nothing in a shot's words can break the filter; the timecode's separators are
/// escaped for both levels of ffmpeg's filter parsing.
fn burn_in(
    work: &Path,
    index: usize,
    code: &str,
    action: &str,
    start: u64,
    rate: FrameRate,
    height: u64,
) -> Result<String> {
    let size = (height / 24).max(14);
    let font = work.join("NanumSquareR.ttf");
    let code_file = work.join(format!("{index:05}-code.txt"));
    let action_file = work.join(format!("{index:05}-action.txt"));
    std::fs::write(&code_file, code).context("writing the burn-in text")?;
    std::fs::write(&action_file, action.replace(['\n', '\r'], " "))
        .context("writing the burn-in text")?;
    let timecode = Timecode::from_frames(start, rate)
        .to_string()
        .replace(':', "\\\\:")
        // `;` also ends a filter at the graph level: one more escape.
        .replace(';', "\\\\\\;");
    let (num, den) = rate.rational();
    let style = format!(
        "fontfile={}:fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=8",
        font.display()
    );
    let mut filter = format!(
        "drawtext={style}:textfile={}:x=24:y=24,drawtext={style}:timecode={timecode}:rate={num}/{den}:x=w-tw-24:y=24",
        code_file.display()
    );
    if !action.trim().is_empty() {
        let _ = write!(
            filter,
            ",drawtext={style}:textfile={}:x=24:y=h-th-24",
            action_file.display()
        );
    }
    Ok(filter)
}

fn run(mut command: Command, what: &str) -> Result<()> {
    let output = command.output().map_err(|e| {
        anyhow::anyhow!(
            "ffmpeg could not be started ({e}): the animatic is encoded with ffmpeg (apt-get install ffmpeg)"
        )
    })?;
    if !output.status.success() {
        bail!(
            "ffmpeg failed on {what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
