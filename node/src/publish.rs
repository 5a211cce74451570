//! `reelmesh publish OUT`: the cut handed to an editor. The format comes from
//! OUT's extension (`.edl`, `.otio`, `.fcpxml`, `.xml` for FCP7 XML / Premiere);
//! each shot's take (the selected one, else the latest) is copied next to it in
//! `<OUT stem>_media/` with a readable name (`SHT-00012_take3.png`), verified
//! against its BLAKE3 hash, and the file points at those copies. A CMX3600 EDL
//! cannot hold a still, so for an EDL stills are first rendered to clips of the
//! shot's length with ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use reelmesh_protocol::jobs::{Take, TakeMedia};
use reelmesh_protocol::model::{Project, Shot};
use reelmesh_protocol::publish::{self, Cut, CutMedia, PublishOptions};

use crate::store::blobs::BlobStore;

/// The formats `publish` writes, by extension.
pub const FORMATS: &str = ".edl (CMX3600), .otio (OpenTimelineIO), .fcpxml (FCPXML 1.10), .xml (FCP7 XML for Premiere), .mp4 (the animatic), .pdf (the storyboard)";

pub mod animatic;
pub mod pdf;

/// What a publish wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The cut's file.
    pub file: PathBuf,
    /// The media folder.
    pub media_dir: PathBuf,
    /// Shots with a take on the cut.
    pub clips: usize,
    /// Shots without one (gaps, or black in an EDL).
    pub gaps: usize,
    /// Stills rendered to clips (EDL only).
    pub rendered: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Edl,
    Otio,
    Fcpxml,
    Xmeml,
    Mp4,
    Pdf,
}

fn format_of(out: &Path) -> Result<Format> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "edl" => Format::Edl,
        "otio" => Format::Otio,
        "fcpxml" => Format::Fcpxml,
        "xml" => Format::Xmeml,
        "mp4" => Format::Mp4,
        "pdf" => Format::Pdf,
        _ => bail!(
            "{}: '{ext}' is not a format publish writes; give a file ending in {FORMATS}",
            out.display()
        ),
    })
}

/// The blobs of the takes the cut shows that are not on this machine (to fetch
/// from peers before publishing).
#[must_use]
pub fn missing_takes(project: &Project, takes: &[Take], blobs: &BlobStore) -> Vec<String> {
    project
        .shots
        .iter()
        .filter_map(|shot| shown_take(shot, takes))
        .filter(|(_, take)| take.blob.parse().is_ok_and(|h| !blobs.has(&h)))
        .map(|(_, take)| take.blob.clone())
        .collect()
}

/// The take a shot shows on the cut: the selected one, else the latest.
#[must_use]
pub fn shown_take<'a>(shot: &Shot, takes: &'a [Take]) -> Option<(usize, &'a Take)> {
    let mut own: Vec<&Take> = takes.iter().filter(|t| t.shot_id == shot.shot_id).collect();
    own.sort_by_key(|t| (t.finished_at_ms, t.take_id.clone()));
    let index = own
        .iter()
        .position(|t| !shot.selected_take.is_empty() && t.take_id == shot.selected_take)
        .or_else(|| own.len().checked_sub(1))?;
    Some((index + 1, own[index]))
}

/// A `file://` URL of an absolute path, percent-encoded.
#[must_use]
pub fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for byte in path.to_string_lossy().as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                url.push(char::from(*byte));
            }
            other => url.push_str(&format!("%{other:02X}")),
        }
    }
    url
}

/// Write the cut of `project` to `out` with its media.
///
/// # Errors
/// An unknown extension, a take whose file is not on this machine or does not match
/// its hash, a folder that cannot be written, ffmpeg missing or failing (EDL).
pub fn publish(
    out: &Path,
    project: &Project,
    takes: &[Take],
    blobs: &BlobStore,
) -> Result<Published> {
    publish_with(
        out,
        project,
        takes,
        blobs,
        PublishOptions::default(),
        &mut |_, _| {},
    )
}

/// [`publish`] with a PDF layout and the animatic's burn-in chosen, telling
/// `progress` (shots done, shots) while an animatic encodes.
///
/// # Errors
/// As [`publish`].
pub fn publish_with(
    out: &Path,
    project: &Project,
    takes: &[Take],
    blobs: &BlobStore,
    options: PublishOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Published> {
    let format = format_of(out)?;
    let out = std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
    let dir = out
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let stem = out
        .file_stem()
        .map_or_else(|| "cut".to_owned(), |s| s.to_string_lossy().into_owned());
    let media_name = format!("{stem}_media");
    let media_dir = dir.join(&media_name);
    std::fs::create_dir_all(&media_dir)
        .with_context(|| format!("creating {}", media_dir.display()))?;
    let rate = project.settings.frame_rate;
    let mut renders: Vec<StillRender> = Vec::new();
    let mut failure = None;
    let cut = Cut::of(project, |shot| {
        if failure.is_some() {
            return None;
        }
        let (index, take) = shown_take(shot, takes)?;
        let edl = (format == Format::Edl).then_some(&mut renders);
        match place_take(shot, index, take, blobs, &media_dir, edl) {
            Ok((name, path, frames, still)) => Some(CutMedia {
                path: format!("{media_name}/{name}"),
                url: file_url(&path),
                name,
                width: take.width,
                height: take.height,
                still,
                frames,
            }),
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let rendered = renders.len();
    render_stills(renders, rate)?;
    let text = match format {
        Format::Edl => publish::edl(&cut),
        Format::Otio => publish::otio(&cut),
        Format::Fcpxml => publish::fcpxml(&cut),
        Format::Xmeml => publish::xmeml(&cut),
        Format::Mp4 => {
            animatic::encode(
                &cut,
                &dir,
                &out,
                animatic::AnimaticOptions {
                    burn_in: options.burn_in,
                },
                progress,
            )?;
            String::new()
        }
        Format::Pdf => {
            pdf::write(project, &cut, &dir, &out, options.layout)?;
            String::new()
        }
    };
    if !matches!(format, Format::Mp4 | Format::Pdf) {
        crate::store::write_atomic(&out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let clips = cut.clips.iter().filter(|c| c.media.is_some()).count();
    Ok(Published {
        file: out,
        media_dir,
        clips,
        gaps: cut.clips.len() - clips,
        rendered,
    })
}

/// Copy (or, for an EDL, render a still to a clip) one take into the media folder:
/// its name, path, frames, whether it is a still, whether it was rendered.
fn place_take(
    shot: &Shot,
    index: usize,
    take: &Take,
    blobs: &BlobStore,
    media_dir: &Path,
    edl: Option<&mut Vec<StillRender>>,
) -> Result<(String, PathBuf, u64, bool)> {
    let hash = take.blob.parse().map_err(|_| {
        anyhow::anyhow!(
            "{}: take {} has no valid blob hash",
            shot.code,
            take.take_id
        )
    })?;
    if !blobs.has(&hash) {
        bail!(
            "{}: take {} ({}) is not on this machine; start the node so it fetches it from a peer (`reelmesh takes --out DIR` shows where takes are)",
            shot.code,
            &take.take_id[..take.take_id.len().min(8)],
            take.blob
        );
    }
    let bytes = blobs.read(&hash)?;
    let extension: String = take
        .extension
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let still = matches!(take.media, TakeMedia::Image | TakeMedia::Card);
    let name = format!("{}_take{index}.{extension}", shot.code);
    let path = media_dir.join(&name);
    crate::store::write_atomic(&path, &bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    if still && let Some(renders) = edl {
        // An EDL cannot hold a still: it points at a clip rendered below.
        let clip_name = format!("{}_take{index}.mp4", shot.code);
        let clip = media_dir.join(&clip_name);
        renders.push(StillRender {
            code: shot.code.to_string(),
            still: path,
            clip: clip.clone(),
            frames: shot.frame_count,
        });
        return Ok((clip_name, clip, shot.frame_count, false));
    }
    let frames = if still {
        shot.frame_count
    } else {
        take.frames.max(1)
    };
    Ok((name, path, frames, still))
}

/// A still to render to a clip of `frames` frames for an EDL.
struct StillRender {
    code: String,
    still: PathBuf,
    clip: PathBuf,
    frames: u64,
}

/// Render the stills to clips, as many ffmpeg runs at once as there are cores.
fn render_stills(
    renders: Vec<StillRender>,
    rate: reelmesh_protocol::timecode::FrameRate,
) -> Result<()> {
    if renders.is_empty() {
        return Ok(());
    }
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let queue = std::sync::Mutex::new(renders.into_iter());
    let failure: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(job) = next else { break };
                    if let Err(e) = still_to_clip(&job.still, &job.clip, job.frames, rate) {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e.context(format!(
                                "{}: rendering the still to a clip for the EDL",
                                job.code
                            )));
                        }
                        break;
                    }
                }
            });
        }
    });
    match failure.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The filter that holds a still, read once (no `-loop` on the input), as frames
/// at `fps`. ffmpeg's image input with `-loop 1` decodes the file again for every
/// frame: that was half the time of an EDL's still clip. The frames are the same.
pub(crate) fn hold_still(fps: &str) -> String {
    format!("loop=loop=-1:size=1:start=0,setpts=N/({fps})/TB")
}

/// A still held for `frames` frames at `rate`, as H.264 (ffmpeg).
fn still_to_clip(
    still: &Path,
    clip: &Path,
    frames: u64,
    rate: reelmesh_protocol::timecode::FrameRate,
) -> Result<()> {
    let (num, den) = rate.rational();
    let fps = format!("{num}/{den}");
    let output = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-i"])
        .arg(still)
        .args(["-vf"])
        .arg(format!(
            "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p,{}",
            hold_still(&fps)
        ))
        .args(["-r", &fps, "-frames:v"])
        .arg(frames.max(1).to_string())
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(clip)
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "ffmpeg could not be started ({e}): an EDL cannot hold a still, install ffmpeg (apt-get install ffmpeg) or publish .otio / .fcpxml / .xml"
            )
        })?;
    if !output.status.success() {
        bail!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Publish one file of the cut and say on `out` what was written.
///
/// # Errors
/// As [`publish`], and `out` failing.
pub fn write_one(
    out: &mut dyn std::io::Write,
    file: &Path,
    project: &Project,
    takes: &[Take],
    blobs: &BlobStore,
    options: PublishOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let published = publish_with(file, project, takes, blobs, options, progress)?;
    writeln!(
        out,
        "wrote {}: {} shots with a take, {} without; media in {}{}",
        published.file.display(),
        published.clips,
        published.gaps,
        published.media_dir.display(),
        if published.rendered > 0 {
            format!(
                " ({} stills rendered to clips for the EDL)",
                published.rendered
            )
        } else {
            String::new()
        }
    )?;
    Ok(())
}

/// The files `--all` writes, in order (the animatic last: it takes longest).
pub const ALL_FILES: [&str; 6] = [
    "cut.edl",
    "cut.otio",
    "cut.fcpxml",
    "cut.xml",
    "storyboard.pdf",
    "animatic.mp4",
];

/// Every format into `dir`, the approved shots' takes into `dir/approved/`, and the
/// project archive (`archive` writes it to the path it is given), saying on `out`
/// what was written. `progress` hears (file, shots done, shots) while the animatic
/// encodes.
///
/// # Errors
/// As [`publish`]; a folder that cannot be made; the archive failing.
#[allow(clippy::too_many_arguments)]
pub fn write_all(
    out: &mut dyn std::io::Write,
    dir: &Path,
    project: &Project,
    takes: &[Take],
    blobs: &BlobStore,
    options: PublishOptions,
    archive: &mut dyn FnMut(&Path) -> Result<crate::archive::Created>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ALL_FILES {
        write_one(
            out,
            &dir.join(name),
            project,
            takes,
            blobs,
            options,
            &mut |done, all| progress(name, done, all),
        )?;
    }
    // The approved shots' takes, readable names, verified against their hashes.
    let approved = dir.join("approved");
    std::fs::create_dir_all(&approved)
        .with_context(|| format!("creating {}", approved.display()))?;
    let mut copied = 0;
    for shot in project
        .shots
        .iter()
        .filter(|s| s.status == reelmesh_protocol::model::ShotStatus::Approved)
    {
        let Some((index, take)) = shown_take(shot, takes) else {
            writeln!(out, "{}: approved but has no take", shot.code)?;
            continue;
        };
        let Ok(hash) = take.blob.parse() else {
            continue;
        };
        if !blobs.has(&hash) {
            writeln!(out, "{}: its take is not on this machine", shot.code)?;
            continue;
        }
        let extension: String = take
            .extension
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let path = approved.join(format!("{}_take{index}.{extension}", shot.code));
        crate::store::write_atomic(&path, &blobs.read(&hash)?)
            .with_context(|| format!("writing {}", path.display()))?;
        copied += 1;
    }
    writeln!(
        out,
        "copied {copied} approved take(s) to {}",
        approved.display()
    )?;
    let file = dir.join("project.rma");
    let created = archive(&file)?;
    writeln!(
        out,
        "archived the project with {} blobs into {}",
        created.manifest.files.len() - 1,
        file.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_percent_encoded() {
        assert_eq!(
            file_url(Path::new("/tmp/밤 골목/a b.png")),
            "file:///tmp/%EB%B0%A4%20%EA%B3%A8%EB%AA%A9/a%20b.png"
        );
    }

    #[test]
    fn the_extension_picks_the_format_and_others_are_named() {
        assert_eq!(format_of(Path::new("cut.EDL")).ok(), Some(Format::Edl));
        assert_eq!(format_of(Path::new("cut.xml")).ok(), Some(Format::Xmeml));
        let e = format_of(Path::new("cut.docx")).expect_err("docx");
        assert!(e.to_string().contains("'docx' is not a format"), "{e}");
        assert!(e.to_string().contains(".fcpxml"), "{e}");
    }
}
