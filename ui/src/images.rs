//! Take images, decoded off the UI thread and kept by hash.
//!
//! The table and the review views ask for a blob's thumbnail or full image each
//! frame; the first ask queues it for a decoding thread (`reelmesh-images`), which
//! reads the blob through the node's [`BlobReader`], decodes it (PNG, JPEG, WEBP,
//! GIF: the first frame of an animation; a clip's first frame through ffmpeg), scales
//! it down and wakes the window. The next frame uploads the texture. A blob that is
//! not on this machine is reported ([`Images::take_missing`]) so the editor can ask
//! the node to fetch it from a peer; ComfyUI's preview frames of running jobs arrive
//! as bytes and go the same way. At most [`MAX_THUMBNAILS`] thumbnails and
//! [`MAX_FULL`] full images stay uploaded; the least recently used go first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use base64::Engine as _;
use egui::{ColorImage, TextureHandle, TextureOptions};
use reelmesh_protocol::jobs::Preview;

use crate::link::Waker;

/// Reads a blob's bytes by hash; `Err(NotHere)` when this machine does not have it.
pub type BlobReader = Arc<dyn Fn(&str) -> Result<Vec<u8>, ReadError> + Send + Sync>;

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not on this machine (a peer may have it).
    NotHere,
    /// It is here but could not be read.
    Failed(String),
}

/// Longest edge of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE: u32 = 160;
/// Longest edge of a full image, in pixels.
pub const FULL_EDGE: u32 = 2048;
/// Thumbnails kept uploaded.
pub const MAX_THUMBNAILS: usize = 512;
/// Full images kept uploaded.
pub const MAX_FULL: usize = 16;

/// Which size of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    /// For table rows and galleries.
    Thumbnail,
    /// For the full view and side by side.
    Full,
}

impl Size {
    fn edge(self) -> u32 {
        match self {
            Size::Thumbnail => THUMBNAIL_EDGE,
            Size::Full => FULL_EDGE,
        }
    }
}

/// Where an image is.
#[derive(Clone)]
enum Slot {
    Decoding,
    Ready(TextureHandle, u64),
    /// Not here: waiting for a fetch.
    Fetching,
    Failed(String),
}

struct Work {
    key: (String, Size),
    source: Source,
}

enum Source {
    Blob,
    Bytes(Vec<u8>),
}

struct Decoded {
    key: (String, Size),
    result: Result<ColorImage, ReadError>,
}

/// The cache and its decoding thread.
pub struct Images {
    work: Option<mpsc::Sender<Work>>,
    done: mpsc::Receiver<Decoded>,
    slots: HashMap<(String, Size), Slot>,
    /// Blobs to fetch from peers.
    missing: Vec<String>,
    /// Preview blobs by job id (the preview's key is `preview:<job>`).
    previews: HashMap<String, String>,
    tick: u64,
    waker: Arc<std::sync::Mutex<Option<Waker>>>,
    reader: Option<BlobReader>,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Images {
    /// A cache reading blobs with `reader` (`None`: no blob can be shown).
    #[must_use]
    pub fn new(reader: Option<BlobReader>) -> Images {
        let kept = reader.clone();
        let (work_tx, work_rx) = mpsc::channel::<Work>();
        let (done_tx, done_rx) = mpsc::channel();
        let waker: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let thread_waker = Arc::clone(&waker);
        let spawned = std::thread::Builder::new()
            .name("reelmesh-images".into())
            .spawn(move || {
                while let Ok(work) = work_rx.recv() {
                    let result = match work.source {
                        Source::Bytes(bytes) => decode(&bytes, work.key.1.edge()),
                        Source::Blob => match &reader {
                            Some(read) => read(&work.key.0)
                                .and_then(|bytes| decode(&bytes, work.key.1.edge())),
                            None => Err(ReadError::Failed("no blob store".into())),
                        },
                    };
                    if done_tx
                        .send(Decoded {
                            key: work.key,
                            result,
                        })
                        .is_err()
                    {
                        break;
                    }
                    if let Some(waker) = thread_waker
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .as_ref()
                    {
                        waker.wake();
                    }
                }
            });
        Images {
            work: spawned.ok().map(|_| work_tx),
            done: done_rx,
            slots: HashMap::new(),
            missing: Vec::new(),
            previews: HashMap::new(),
            tick: 0,
            waker,
            reader: kept,
        }
    }

    /// What reads blobs (for the player's clip decoder).
    #[must_use]
    pub fn reader(&self) -> Option<BlobReader> {
        self.reader.clone()
    }

    /// What wakes the window when something decoded off its thread is ready.
    #[must_use]
    pub fn waker(&self) -> Option<Waker> {
        self.waker.lock().ok().and_then(|w| w.clone())
    }

    /// Wake this window when an image is decoded.
    pub fn set_waker(&mut self, waker: Waker) {
        *self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(waker);
    }

    /// Upload what was decoded since the last frame.
    pub fn receive(&mut self, ctx: &egui::Context) {
        self.tick += 1;
        while let Ok(decoded) = self.done.try_recv() {
            let slot = match decoded.result {
                Ok(image) => {
                    let name = format!("{}-{:?}", decoded.key.0, decoded.key.1);
                    Slot::Ready(
                        ctx.load_texture(name, image, TextureOptions::LINEAR),
                        self.tick,
                    )
                }
                Err(ReadError::NotHere) => {
                    self.missing.push(decoded.key.0.clone());
                    Slot::Fetching
                }
                Err(ReadError::Failed(why)) => Slot::Failed(why),
            };
            self.slots.insert(decoded.key, slot);
        }
        self.evict(Size::Thumbnail, MAX_THUMBNAILS);
        self.evict(Size::Full, MAX_FULL);
    }

    fn evict(&mut self, size: Size, keep: usize) {
        let mut ready: Vec<(u64, (String, Size))> = self
            .slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready(_, used) if key.1 == size => Some((*used, key.clone())),
                _ => None,
            })
            .collect();
        if ready.len() <= keep {
            return;
        }
        ready.sort();
        // The least recently used of this size go; the others stay.
        let extra = ready.len() - keep;
        for (_, key) in ready.into_iter().take(extra) {
            self.slots.remove(&key);
        }
    }

    fn get(
        &mut self,
        hash: &str,
        size: Size,
        source: impl FnOnce() -> Source,
    ) -> Option<TextureHandle> {
        let key = (hash.to_owned(), size);
        match self.slots.get_mut(&key) {
            Some(Slot::Ready(texture, used)) => {
                *used = self.tick;
                Some(texture.clone())
            }
            Some(_) => None,
            None => {
                let queued = self.work.as_ref().is_some_and(|work| {
                    work.send(Work {
                        key: key.clone(),
                        source: source(),
                    })
                    .is_ok()
                });
                self.slots.insert(
                    key,
                    if queued {
                        Slot::Decoding
                    } else {
                        Slot::Failed("the image thread stopped".into())
                    },
                );
                None
            }
        }
    }

    /// A blob's thumbnail, once decoded (asking for it queues it).
    pub fn thumbnail(&mut self, _ctx: &egui::Context, hash: &str) -> Option<TextureHandle> {
        self.get(hash, Size::Thumbnail, || Source::Blob)
    }

    /// A blob's full image, once decoded.
    pub fn full(&mut self, hash: &str) -> Option<TextureHandle> {
        self.get(hash, Size::Full, || Source::Blob)
    }

    /// Why a blob cannot be shown, if it cannot (failed, or being fetched).
    #[must_use]
    pub fn problem(&self, hash: &str) -> Option<String> {
        [Size::Thumbnail, Size::Full].iter().find_map(|size| {
            match self.slots.get(&(hash.to_owned(), *size)) {
                Some(Slot::Failed(why)) => Some(why.clone()),
                Some(Slot::Fetching) => Some("fetching it from a peer…".to_owned()),
                _ => None,
            }
        })
    }

    /// Blobs that are not on this machine, to fetch from peers (each once).
    pub fn take_missing(&mut self) -> Vec<String> {
        std::mem::take(&mut self.missing)
    }

    /// A fetch finished: decode the blob again.
    pub fn fetched(&mut self, hash: &str) {
        self.slots.retain(|(h, _), _| h != hash);
    }

    /// A running job's latest ComfyUI preview frame.
    pub fn preview(&mut self, job_id: &str, preview: &Preview) {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&preview.base64) else {
            return;
        };
        let key = format!("preview:{job_id}:{}", blake_ish(&bytes));
        if let Some(old) = self.previews.insert(job_id.to_owned(), key.clone()) {
            self.slots.remove(&(old, Size::Thumbnail));
        }
        let _ = self.get(&key, Size::Thumbnail, || Source::Bytes(bytes));
    }

    /// A job's latest preview frame, once decoded.
    pub fn preview_of(&mut self, job_id: &str) -> Option<TextureHandle> {
        let key = self.previews.get(job_id)?.clone();
        self.get(&key, Size::Thumbnail, || Source::Bytes(Vec::new()))
    }
}

/// A short fingerprint of preview bytes (to tell one frame from the next).
fn blake_ish(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Decode `bytes` and scale the image so its longest edge is at most `edge`. A
/// clip (MP4/MOV, WEBM/MKV) shows its first frame, through ffmpeg.
fn decode(bytes: &[u8], edge: u32) -> Result<ColorImage, ReadError> {
    decode_with(bytes, edge, "ffmpeg")
}

/// [`decode`] with the clip decoder `ffmpeg`.
fn decode_with(bytes: &[u8], edge: u32, ffmpeg: &str) -> Result<ColorImage, ReadError> {
    let image = if reelmesh_protocol::jobs::video_container(bytes).is_some() {
        let png = crate::clips::poster(bytes, ffmpeg).map_err(ReadError::Failed)?;
        image::load_from_memory(&png)
            .map_err(|e| ReadError::Failed(format!("ffmpeg's frame of the clip: {e}")))?
    } else {
        image::load_from_memory(bytes)
            .map_err(|e| ReadError::Failed(format!("not an image this editor reads: {e}")))?
    };
    let image = if image.width() > edge || image.height() > edge {
        image.thumbnail(edge, edge)
    } else {
        image
    };
    let rgba = image.to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    Ok(ColorImage::from_rgba_unmultiplied(size, rgba.as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let image = image::RgbaImage::from_pixel(width, height, image::Rgba([200, 10, 10, 255]));
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .expect("png");
        bytes
    }

    #[test]
    fn images_are_scaled_to_their_size_and_junk_is_a_reason() {
        let decoded = decode(&png(640, 320), THUMBNAIL_EDGE).expect("decoded");
        assert_eq!(decoded.size, [160, 80]);
        let small = decode(&png(20, 10), THUMBNAIL_EDGE).expect("decoded");
        assert_eq!(small.size, [20, 10]);
        let Err(ReadError::Failed(why)) = decode(b"not a png", THUMBNAIL_EDGE) else {
            panic!("junk decoded");
        };
        assert!(why.contains("not an image"), "{why}");
    }

    #[test]
    fn a_clip_shows_its_first_frame_and_a_broken_one_says_why() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/comfyui/view_video.mp4"
        );
        let clip = std::fs::read(path).expect("the recorded ComfyUI clip");
        // Without the decoder: the reason names ffmpeg and how to install it.
        let Err(ReadError::Failed(why)) =
            decode_with(&clip, THUMBNAIL_EDGE, "reelmesh-test-no-such-ffmpeg")
        else {
            panic!("decoded without a decoder");
        };
        assert!(why.contains("apt-get install ffmpeg"), "{why}");
        if std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_err()
        {
            eprintln!("\n!! clip posters NOT RUN: ffmpeg is missing (CI requires it)\n");
            assert!(std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_none());
            return;
        }
        // ComfyUI's clip is 64x64: its first frame, the same pixels ffmpeg gives.
        let poster = decode(&clip, THUMBNAIL_EDGE).expect("poster");
        assert_eq!(poster.size, [64, 64]);
        let raw = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", path, "-frames:v", "1"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
            .output()
            .expect("ffmpeg");
        assert_eq!(poster.as_raw(), raw.stdout.as_slice());
        // A clip cut short after its header: a reason from ffmpeg, no panic.
        let Err(ReadError::Failed(why)) = decode(&clip[..64], THUMBNAIL_EDGE) else {
            panic!("a cut clip decoded");
        };
        assert!(
            why.starts_with("ffmpeg decoded no frame of the clip"),
            "{why}"
        );
    }

    #[test]
    fn a_blob_is_decoded_off_the_ui_thread_and_a_missing_one_is_asked_for() {
        let bytes = png(64, 64);
        let reader: BlobReader = Arc::new(move |hash: &str| match hash {
            "here" => Ok(bytes.clone()),
            _ => Err(ReadError::NotHere),
        });
        let mut images = Images::new(Some(reader));
        let ctx = egui::Context::default();
        assert!(
            images.thumbnail(&ctx, "here").is_none(),
            "queued, not ready"
        );
        assert!(images.thumbnail(&ctx, "away").is_none());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut texture = None;
        while texture.is_none() && std::time::Instant::now() < deadline {
            // The decoder thread sends as soon as it is done; receive drains it.
            if let Ok(decoded) = images.done.recv_timeout(std::time::Duration::from_secs(10)) {
                let key = decoded.key.clone();
                let ready = decoded.result.clone();
                images.slots.remove(&key);
                if let Ok(image) = ready {
                    texture = Some(image.size);
                }
                if key.0 == "away" {
                    assert_eq!(decoded.result.err(), Some(ReadError::NotHere));
                }
            }
        }
        assert_eq!(texture, Some([64, 64]));
    }
}
