//! Video takes decoded for the player: ffmpeg (the Debian package) turns a clip's
//! bytes into RGBA frames at the project rate on a thread of its own, ahead of the
//! playhead; the player asks for frame N and gets a texture once it is there. At
//! most a few clips are kept (the one playing and the next).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::images::BlobReader;
use crate::link::Waker;

/// Clips kept decoded.
const KEEP: usize = 3;
/// Width frames are decoded at (the player scales them).
const WIDTH: u32 = 640;
/// The longest run decoded of one clip, frames (a minute at 60 fps).
const MOST_FRAMES: usize = 3600;

struct Job {
    /// The decoder: `ffmpeg` on the PATH.
    program: &'static str,
    blob: String,
    width: u32,
    height: u32,
    rate: (u32, u32),
}

enum Clip {
    Decoding,
    Ready(Vec<egui::ColorImage>),
    Failed(String),
}

/// The decoder and what it has decoded.
pub struct Clips {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<(String, Result<Vec<egui::ColorImage>, String>)>,
    clips: HashMap<String, Clip>,
    order: VecDeque<String>,
    shown: Option<((String, usize), egui::TextureHandle)>,
}

impl std::fmt::Debug for Clips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clips")
            .field("clips", &self.clips.len())
            .finish_non_exhaustive()
    }
}

impl Clips {
    /// A decoder reading blobs with `reader`, waking the window with `waker`.
    #[must_use]
    pub fn new(reader: Option<BlobReader>, waker: Option<Waker>) -> Clips {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("reelmesh-clips".into())
            .spawn(move || {
                while let Ok(job) = jobs_rx.recv() {
                    let result = match &reader {
                        Some(read) => read(&job.blob)
                            .map_err(|e| format!("{e:?}"))
                            .and_then(|bytes| decode(&bytes, &job)),
                        None => Err("no blob store".into()),
                    };
                    if done_tx.send((job.blob, result)).is_err() {
                        break;
                    }
                    if let Some(waker) = &waker {
                        waker.wake();
                    }
                }
            });
        Clips {
            jobs: spawned.ok().map(|_| jobs_tx),
            done: done_rx,
            clips: HashMap::new(),
            order: VecDeque::new(),
            shown: None,
        }
    }

    /// Take in what the thread decoded.
    pub fn receive(&mut self) {
        while let Ok((blob, result)) = self.done.try_recv() {
            let clip = match result {
                Ok(frames) => Clip::Ready(frames),
                Err(why) => Clip::Failed(why),
            };
            self.clips.insert(blob, clip);
        }
    }

    /// Decode `blob` (a clip of `width`×`height`) at `rate` if not done or under way.
    pub fn want(&mut self, blob: &str, (width, height): (u64, u64), rate: (u32, u32)) {
        if self.clips.contains_key(blob) {
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        let w = WIDTH;
        let h = if width > 0 && height > 0 {
            ((f64::from(w) * height as f64 / width as f64 / 2.0).round() as u32 * 2).max(2)
        } else {
            360
        };
        if jobs
            .send(Job {
                program: "ffmpeg",
                blob: blob.to_owned(),
                width: w,
                height: h,
                rate,
            })
            .is_ok()
        {
            self.clips.insert(blob.to_owned(), Clip::Decoding);
            self.order.push_back(blob.to_owned());
            while self.order.len() > KEEP {
                if let Some(old) = self.order.pop_front() {
                    self.clips.remove(&old);
                }
            }
        }
    }

    /// Frame `index` of `blob` (the last one past its end), once decoded; else why
    /// not (`None` while decoding).
    pub fn frame(
        &mut self,
        ctx: &egui::Context,
        blob: &str,
        index: usize,
    ) -> Result<Option<egui::TextureHandle>, String> {
        let frames = match self.clips.get(blob) {
            Some(Clip::Ready(frames)) if !frames.is_empty() => frames,
            Some(Clip::Ready(_)) => return Err("the clip has no frames".into()),
            Some(Clip::Failed(why)) => return Err(why.clone()),
            Some(Clip::Decoding) | None => return Ok(None),
        };
        let index = index.min(frames.len() - 1);
        let key = (blob.to_owned(), index);
        if let Some((shown, texture)) = &self.shown
            && *shown == key
        {
            return Ok(Some(texture.clone()));
        }
        let texture = ctx.load_texture(
            format!("clip:{blob}:{index}"),
            frames[index].clone(),
            egui::TextureOptions::LINEAR,
        );
        self.shown = Some((key, texture.clone()));
        Ok(Some(texture))
    }
}

/// Start `program` (ffmpeg) with `args`, its standard input fed `bytes` by a thread
/// of its own (ffmpeg may stop reading early: the poster needs one frame).
fn ffmpeg_fed(
    program: &str,
    args: &[&str],
    bytes: &[u8],
) -> Result<(std::process::Child, std::thread::JoinHandle<()>), String> {
    let mut child = Command::new(program)
        .args(["-v", "error", "-i", "pipe:0"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "clips play with ffmpeg, which could not be started ({e}): apt-get install ffmpeg"
            )
        })?;
    let mut stdin = child.stdin.take().ok_or("no ffmpeg input")?;
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    Ok((child, writer))
}

/// What ffmpeg said on standard error, once it has ended.
fn ffmpeg_said(child: std::process::Child, writer: std::thread::JoinHandle<()>) -> String {
    let _ = writer.join();
    child
        .wait_with_output()
        .map(|output| String::from_utf8_lossy(&output.stderr).trim().to_owned())
        .unwrap_or_else(|e| e.to_string())
}

/// A clip's first frame as PNG bytes (its poster: the thumbnail in the table, the
/// timeline and the gallery), through `program` (ffmpeg).
///
/// # Errors
///
/// Why not, naming ffmpeg: it is missing (and how to install it) or it decoded no
/// frame (with what it said).
pub fn poster(bytes: &[u8], program: &str) -> Result<Vec<u8>, String> {
    let (mut child, writer) = ffmpeg_fed(
        program,
        &[
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-c:v",
            "png",
            "pipe:1",
        ],
        bytes,
    )?;
    let mut png = Vec::new();
    let read = child
        .stdout
        .take()
        .map(|mut stdout| stdout.read_to_end(&mut png));
    let said = ffmpeg_said(child, writer);
    match read {
        Some(Ok(_)) if !png.is_empty() => Ok(png),
        _ => Err(format!("ffmpeg decoded no frame of the clip: {said}")),
    }
}

/// Every frame of `bytes` at the job's rate and size, through ffmpeg.
fn decode(bytes: &[u8], job: &Job) -> Result<Vec<egui::ColorImage>, String> {
    let (num, den) = job.rate;
    let filter = format!("fps={num}/{den},scale={}:{}", job.width, job.height);
    let (mut child, writer) = ffmpeg_fed(
        job.program,
        &[
            "-vf", &filter, "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1",
        ],
        bytes,
    )?;
    let mut stdout = child.stdout.take().ok_or("no ffmpeg output")?;
    let size = (job.width * job.height * 4) as usize;
    let mut frames = Vec::new();
    let mut buffer = vec![0_u8; size];
    while frames.len() < MOST_FRAMES && stdout.read_exact(&mut buffer).is_ok() {
        frames.push(egui::ColorImage::from_rgba_unmultiplied(
            [job.width as usize, job.height as usize],
            &buffer,
        ));
    }
    drop(stdout);
    let said = ffmpeg_said(child, writer);
    if frames.is_empty() {
        return Err(format!("ffmpeg decoded no frame: {said}"));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_from_comfyui_decodes_to_frames_at_the_project_rate() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/comfyui/view_video.mp4"
        );
        let bytes = std::fs::read(path).expect("the recorded ComfyUI clip");
        if Command::new("ffmpeg").arg("-version").output().is_err() {
            eprintln!("\n!! clip decoding NOT RUN: ffmpeg is missing (CI requires it)\n");
            assert!(std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_none());
            return;
        }
        let job = Job {
            program: "ffmpeg",
            blob: "clip".into(),
            width: 64,
            height: 64,
            rate: (24, 1),
        };
        let frames = decode(&bytes, &job).expect("decoded");
        assert!(!frames.is_empty());
        assert!(frames.iter().all(|f| f.size == [64, 64]));
        // At 24 fps, the clip's length in frames is its duration times 24 (ffprobe).
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                path,
            ])
            .output()
            .expect("ffprobe");
        let seconds: f64 = String::from_utf8_lossy(&probe.stdout)
            .trim()
            .parse()
            .expect("duration");
        let expected = (seconds * 24.0).round() as usize;
        assert!(
            frames.len().abs_diff(expected) <= 1,
            "{} frames for {seconds} s at 24 fps",
            frames.len()
        );
        // Garbage is an error naming ffmpeg, not a panic.
        let error = decode(b"not a video", &job).expect_err("garbage");
        assert!(error.contains("ffmpeg"), "{error}");
    }

    #[test]
    fn without_ffmpeg_a_clip_says_what_is_missing_and_how_to_get_it() {
        let job = Job {
            program: "reelmesh-test-no-such-ffmpeg",
            blob: "clip".into(),
            width: 64,
            height: 64,
            rate: (24, 1),
        };
        let error = decode(b"any bytes", &job).expect_err("no decoder");
        assert!(
            error.starts_with("clips play with ffmpeg, which could not be started")
                && error.ends_with("apt-get install ffmpeg"),
            "{error}"
        );
    }
}
