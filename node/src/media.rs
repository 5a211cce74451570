//! What a rendered output file really is: its size, frame count, frame rate and
//! duration, read from the file itself rather than from what the workflow asked for.
//!
//! Images and animations (PNG and APNG, JPEG, WEBP still and animated, GIF) are read
//! from their headers and chunk structure by [`probe_bytes`]; no pixel is decoded. The
//! whole structure is walked up to its end marker (PNG `IEND`, JPEG `EOI`, the GIF
//! trailer, the length the RIFF header gives for WEBP), so a file cut short by a crash
//! or a full disk is reported as such instead of being recorded as a good take.
//!
//! Video containers (MP4/MOV, WEBM/MKV, told apart by [`is_video_container`]) need a
//! demuxer and a decoder to count frames, so [`probe_video_file`] asks `ffprobe` (from
//! the ffmpeg package) about the stored file. [`probe`] picks the right one.
//!
//! Nothing here panics on any input: truncated or garbage bytes give a [`MediaError`]
//! naming the format and the part that is missing or wrong ("WEBP: the VP8X chunk is
//! cut short"). Every loop over chunks, segments or blocks advances by at least one
//! byte per round and nothing is allocated in proportion to what a header claims.
//!
//! A single frame without a delay is a still whatever the container: `frames` 1,
//! `fps` 0.0 and `duration_ms` 0 (one frame with a delay plays that long: encoders
//! merge identical frames). For an animation `duration_ms` is the sum of the frame delays
//! and `fps` is `frames * 1000 / duration_ms` (0.0 when every delay is zero), rounded
//! to three decimals.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use reelmesh_protocol::jobs::video_container;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The PNG signature.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
/// A JPEG starts with SOI (`FF D8`) followed by the next marker's `FF`.
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
/// Most of ffprobe's standard error kept in an error message.
const MAX_STDERR_BYTES: usize = 600;

/// What an output file holds, as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Width in pixels (for an animation, the canvas width).
    pub width: u64,
    /// Height in pixels (for an animation, the canvas height).
    pub height: u64,
    /// Number of frames; 1 for a still image.
    pub frames: u64,
    /// Frames per second; 0.0 for a still, or for an animation whose delays are all
    /// zero.
    pub fps: f64,
    /// Total running time in milliseconds; 0 for a still.
    pub duration_ms: u64,
}

/// Why a file could not be probed. The messages name the format and the part of the
/// file that is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// There are no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// The first bytes match no format this module reads.
    #[error(
        "not a PNG, JPEG, WEBP or GIF image nor an MP4/MOV/WEBM/MKV video (the file begins {magic})"
    )]
    Unrecognized {
        /// The first bytes of the file, in hex.
        magic: String,
    },
    /// The file ends inside a part of its structure, or before its end marker.
    #[error("{format}: {what}")]
    Truncated {
        /// The format the file announced ("PNG", "JPEG", "WEBP", "GIF").
        format: &'static str,
        /// What is cut short or missing, e.g. "the VP8X chunk is cut short".
        what: String,
    },
    /// A part of the structure holds something the format does not allow.
    #[error("{format}: {what}")]
    Invalid {
        /// The format the file announced ("PNG", "JPEG", "WEBP", "GIF").
        format: &'static str,
        /// What is wrong, e.g. "the first chunk is tEXt, not IHDR".
        what: String,
    },
    /// The bytes are a video container, which is probed from its file with ffprobe
    /// ([`probe_video_file`]), not from bytes alone.
    #[error(
        "the file is a {container} video: it is probed with ffprobe from the path where it \
         is stored, not from its bytes"
    )]
    VideoNeedsPath {
        /// "MP4/MOV" or "WEBM/MKV".
        container: &'static str,
    },
    /// `ffprobe` is not on `PATH`.
    #[error(
        "ffprobe is not installed, so video files cannot be probed: install ffmpeg \
         (Debian/Ubuntu: apt-get install ffmpeg)"
    )]
    NoFfprobe,
    /// `ffprobe` is there but could not be started.
    #[error("could not run ffprobe on {}: {source}", path.display())]
    FfprobeRun {
        /// The file that was to be probed.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `ffprobe` ran and failed (missing file, not a media file, broken container).
    #[error("ffprobe could not read {} ({status}): {stderr}", path.display())]
    FfprobeFailed {
        /// The file probed.
        path: PathBuf,
        /// How ffprobe exited, e.g. "exit status: 1".
        status: String,
        /// The start of what ffprobe wrote to standard error.
        stderr: String,
    },
    /// `ffprobe` succeeded but its report lacks what is needed.
    #[error("ffprobe's report on {}: {what}", path.display())]
    FfprobeReport {
        /// The file probed.
        path: PathBuf,
        /// What is missing or unreadable, e.g. "lists no video stream".
        what: String,
    },
}

/// Reads the size, frame count, frame rate and duration of a PNG/APNG, JPEG, WEBP
/// (VP8, VP8L, VP8X still or animated) or GIF from its bytes, without decoding
/// pixels. APNG frames come from `acTL` and the delays from `fcTL`; animated WEBP
/// takes its canvas from `VP8X` and sums the `ANMF` frame durations; GIF counts image
/// descriptors and sums the graphic control extension delays (1/100 s each).
///
/// # Errors
///
/// [`MediaError::Truncated`] or [`MediaError::Invalid`] naming the format and the
/// part at fault when the structure is cut short or wrong,
/// [`MediaError::VideoNeedsPath`] for a video container, [`MediaError::Empty`] and
/// [`MediaError::Unrecognized`] otherwise.
pub fn probe_bytes(bytes: &[u8]) -> Result<MediaInfo, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    if bytes.starts_with(PNG_MAGIC) {
        return probe_png(bytes);
    }
    if bytes.starts_with(JPEG_MAGIC) {
        return probe_jpeg(bytes);
    }
    if bytes.len() >= 12
        && bytes.starts_with(b"RIFF")
        && bytes.get(8..12) == Some(b"WEBP".as_slice())
    {
        return probe_webp(bytes);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return probe_gif(bytes);
    }
    if let Some(container) = video_container(bytes) {
        return Err(MediaError::VideoNeedsPath { container });
    }
    // A file cut short inside its signature still says what it was meant to be.
    let cut_signature = |format| MediaError::Truncated {
        format,
        what: "the file is cut short inside its signature".to_owned(),
    };
    if PNG_MAGIC.starts_with(bytes) {
        return Err(cut_signature("PNG"));
    }
    if JPEG_MAGIC.starts_with(bytes) {
        return Err(cut_signature("JPEG"));
    }
    if b"GIF89a".starts_with(bytes) || b"GIF87a".starts_with(bytes) {
        return Err(cut_signature("GIF"));
    }
    if bytes.len() < 12 && (b"RIFF".starts_with(bytes) || bytes.starts_with(b"RIFF")) {
        return Err(cut_signature("WEBP"));
    }
    Err(MediaError::Unrecognized {
        magic: hex_prefix(bytes),
    })
}

/// Probes a stored video file (MP4/MOV/WEBM/MKV, or anything ffprobe reads) by running
/// `ffprobe -v error -select_streams v:0 -count_frames -show_entries
/// stream=width,height,nb_read_frames,avg_frame_rate,r_frame_rate,duration:format=duration
/// -of json PATH`. The frame count is the number of frames ffprobe decoded; the rate is
/// `avg_frame_rate` (else `r_frame_rate`, else frames over duration); the duration is
/// the stream's, else the container's. This blocks while ffprobe decodes the whole
/// stream: call it from a blocking thread in async code.
///
/// # Errors
///
/// [`MediaError::NoFfprobe`] when ffprobe is not installed (its message says to install
/// ffmpeg), [`MediaError::FfprobeFailed`] when ffprobe cannot read the file,
/// [`MediaError::FfprobeReport`] when its report lacks a video stream, a size, a frame
/// count or a duration, [`MediaError::FfprobeRun`] when it cannot be started.
pub fn probe_video_file(path: &Path) -> Result<MediaInfo, MediaError> {
    probe_video_file_with("ffprobe", path)
}

/// Probes an output file: images and animations from their bytes with
/// [`probe_bytes`]; a video container (see [`is_video_container`]) with ffprobe on
/// `path`, where the same bytes are already stored. Nothing is written.
///
/// # Errors
///
/// Those of [`probe_bytes`] and [`probe_video_file`];
/// [`MediaError::VideoNeedsPath`] for a video given without a path.
pub fn probe(bytes: &[u8], path: Option<&Path>) -> Result<MediaInfo, MediaError> {
    match (video_container(bytes), path) {
        (Some(_), Some(path)) => probe_video_file(path),
        (Some(container), None) => Err(MediaError::VideoNeedsPath { container }),
        (None, _) => probe_bytes(bytes),
    }
}

/// Whether the bytes start like a video container: an ISO base media file (MP4, MOV,
/// with `ftyp` at offset 4) or a Matroska/WEBM file (EBML header `1A 45 DF A3`).
#[must_use]
pub fn is_video_container(bytes: &[u8]) -> bool {
    video_container(bytes).is_some()
}

// ---------------------------------------------------------------------------------
// Results and small readers.

/// A single image.
fn still(width: u64, height: u64) -> MediaInfo {
    MediaInfo {
        width,
        height,
        frames: 1,
        fps: 0.0,
        duration_ms: 0,
    }
}

/// An animation of `frames` frames lasting `duration_ms`. One frame with no delay
/// is a still; one frame with a delay plays for that long (an encoder merges
/// identical frames: ComfyUI's SaveAnimatedWEBP of 12 equal frames at 6 fps is one
/// frame of 2 s), and its rate says so (0.5 fps).
fn animation(width: u64, height: u64, frames: u64, duration_ms: u64) -> MediaInfo {
    if frames == 0 || (frames == 1 && duration_ms == 0) {
        return still(width, height);
    }
    let fps = if duration_ms == 0 {
        0.0
    } else {
        round3(to_f64(frames) * 1000.0 / to_f64(duration_ms))
    };
    MediaInfo {
        width,
        height,
        frames,
        fps,
        duration_ms,
    }
}

/// Rounds to three decimals.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A `u64` as the nearest `f64` (exact below 2^53), without a lossy `as`.
fn to_f64(value: u64) -> f64 {
    let high = u32::try_from(value >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(value & 0xFFFF_FFFF).unwrap_or(u32::MAX);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

/// The bytes at `at..at + len`, if all are there.
fn slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

/// A big-endian `u16` at `at`.
fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = slice(bytes, at, 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// A big-endian `u32` at `at`.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = slice(bytes, at, 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A little-endian `u16` at `at`.
fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = slice(bytes, at, 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// A little-endian 24-bit number at `at`.
fn le_u24(bytes: &[u8], at: usize) -> Option<u32> {
    let b = slice(bytes, at, 3)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], 0]))
}

/// A little-endian `u32` at `at`.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = slice(bytes, at, 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A chunk type for messages: the four letters when printable ("VP8 " as "VP8"),
/// otherwise hex.
fn fourcc(kind: &[u8]) -> String {
    if kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(kind).trim_end().to_owned()
    } else {
        let hex: Vec<String> = kind.iter().map(|b| format!("{b:02X}")).collect();
        format!("0x{}", hex.concat())
    }
}

/// The first bytes of a file in hex, for [`MediaError::Unrecognized`].
fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(12).map(|b| format!("{b:02X}")).collect();
    let more = if bytes.len() > 12 { " .." } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// A [`MediaError::Truncated`].
fn truncated(format: &'static str, what: impl Into<String>) -> MediaError {
    MediaError::Truncated {
        format,
        what: what.into(),
    }
}

/// A [`MediaError::Invalid`].
fn invalid(format: &'static str, what: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        format,
        what: what.into(),
    }
}

/// Refuses a zero width or height.
fn nonzero_size(
    format: &'static str,
    source: &str,
    width: u64,
    height: u64,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(invalid(
            format,
            format!("{source} gives a size of {width}x{height}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// PNG and APNG.

/// Walks the PNG chunks from `IHDR` to `IEND`.
fn probe_png(bytes: &[u8]) -> Result<MediaInfo, MediaError> {
    const F: &str = "PNG";
    let mut at = PNG_MAGIC.len();
    let mut size = None;
    let mut announced_frames: Option<u32> = None;
    let mut frame_controls: u64 = 0;
    let mut delay_us: u64 = 0;
    loop {
        if at == bytes.len() {
            return Err(truncated(F, "the file ends before the IEND chunk"));
        }
        let (Some(len), Some(kind)) = (be_u32(bytes, at), slice(bytes, at + 4, 4)) else {
            return Err(truncated(F, "a chunk header is cut short"));
        };
        let name = fourcc(kind);
        let data_at = at + 8;
        let data = usize::try_from(len)
            .ok()
            .and_then(|len| slice(bytes, data_at, len))
            .ok_or_else(|| truncated(F, format!("the {name} chunk is cut short")))?;
        // Each chunk ends with a 4-byte CRC.
        let next = (data_at + data.len())
            .checked_add(4)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| truncated(F, format!("the CRC of the {name} chunk is cut short")))?;
        if size.is_none() && kind != b"IHDR" {
            return Err(invalid(F, format!("the first chunk is {name}, not IHDR")));
        }
        match kind {
            b"IHDR" => {
                if size.is_some() {
                    return Err(invalid(F, "a second IHDR chunk"));
                }
                if data.len() != 13 {
                    return Err(invalid(
                        F,
                        format!("the IHDR chunk is {} bytes, not 13", data.len()),
                    ));
                }
                let width = u64::from(be_u32(data, 0).unwrap_or(0));
                let height = u64::from(be_u32(data, 4).unwrap_or(0));
                nonzero_size(F, "the IHDR chunk", width, height)?;
                size = Some((width, height));
            }
            b"acTL" => {
                let num_frames = be_u32(data, 0)
                    .filter(|_| data.len() == 8)
                    .ok_or_else(|| invalid(F, "the acTL chunk is not 8 bytes"))?;
                if num_frames == 0 {
                    return Err(invalid(F, "the acTL chunk announces 0 frames"));
                }
                announced_frames = Some(num_frames);
            }
            b"fcTL" => {
                let (26, Some(num), Some(den)) = (data.len(), be_u16(data, 20), be_u16(data, 22))
                else {
                    return Err(invalid(
                        F,
                        format!(
                            "fcTL chunk {} is {} bytes, not 26",
                            frame_controls + 1,
                            data.len()
                        ),
                    ));
                };
                // A zero denominator means hundredths of a second.
                let den = if den == 0 { 100 } else { den };
                frame_controls += 1;
                delay_us = delay_us.saturating_add(u64::from(num) * 1_000_000 / u64::from(den));
            }
            b"IEND" => break,
            _ => {}
        }
        at = next;
    }
    let (width, height) = size.ok_or_else(|| invalid(F, "no IHDR chunk"))?;
    let Some(frames) = announced_frames else {
        return Ok(still(width, height));
    };
    if u64::from(frames) != frame_controls {
        return Err(invalid(
            F,
            format!(
                "the acTL chunk announces {frames} frames but {frame_controls} fcTL chunks follow"
            ),
        ));
    }
    Ok(animation(
        width,
        height,
        u64::from(frames),
        delay_us.saturating_add(500) / 1000,
    ))
}

// ---------------------------------------------------------------------------------
// JPEG.

/// Whether a JPEG marker is a start-of-frame header (SOF0..SOF15 but DHT, JPG, DAC).
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// A JPEG marker's name, for messages.
fn jpeg_marker_name(marker: u8) -> String {
    match marker {
        0xC4 => "DHT".to_owned(),
        0xCC => "DAC".to_owned(),
        0xDA => "SOS".to_owned(),
        0xDB => "DQT".to_owned(),
        0xDD => "DRI".to_owned(),
        0xFE => "COM".to_owned(),
        m if is_sof(m) => format!("SOF{}", m - 0xC0),
        m @ 0xE0..=0xEF => format!("APP{}", m - 0xE0),
        m => format!("0xFF{m:02X}"),
    }
}

/// Walks the JPEG segments and entropy-coded scans from SOI to EOI; the size comes
/// from the first SOF header.
fn probe_jpeg(bytes: &[u8]) -> Result<MediaInfo, MediaError> {
    const F: &str = "JPEG";
    let mut at = 2;
    let mut size = None;
    loop {
        let Some(&byte) = bytes.get(at) else {
            return Err(truncated(F, "the file ends before the EOI marker"));
        };
        if byte != 0xFF {
            return Err(invalid(
                F,
                format!("expected a marker at offset {at}, found byte 0x{byte:02X}"),
            ));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        let mut marker_at = at + 1;
        while bytes.get(marker_at) == Some(&0xFF) {
            marker_at += 1;
        }
        let Some(&marker) = bytes.get(marker_at) else {
            return Err(truncated(F, "the file ends before the EOI marker"));
        };
        at = marker_at + 1;
        match marker {
            0xD9 => break,
            0xD8 => {
                return Err(invalid(
                    F,
                    format!("a second SOI marker at offset {marker_at}"),
                ));
            }
            0x00 => return Err(invalid(F, format!("a stray 0xFF00 at offset {marker_at}"))),
            // TEM and RSTn stand alone, without a length.
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let name = jpeg_marker_name(marker);
                let len = be_u16(bytes, at)
                    .ok_or_else(|| truncated(F, format!("the {name} segment is cut short")))?;
                if len < 2 {
                    return Err(invalid(F, format!("the {name} segment has length {len}")));
                }
                let segment = slice(bytes, at, usize::from(len))
                    .ok_or_else(|| truncated(F, format!("the {name} segment is cut short")))?;
                if is_sof(marker) && size.is_none() {
                    // length(2) precision(1) height(2) width(2) components(1)
                    let (Some(height), Some(width)) = (be_u16(segment, 3), be_u16(segment, 5))
                    else {
                        return Err(invalid(F, format!("the {name} segment is too short")));
                    };
                    if height == 0 {
                        return Err(invalid(
                            F,
                            format!(
                                "the {name} header gives height 0 (set later by a DNL \
                                 marker), which is not supported"
                            ),
                        ));
                    }
                    nonzero_size(
                        F,
                        &format!("the {name} header"),
                        width.into(),
                        height.into(),
                    )?;
                    size = Some((u64::from(width), u64::from(height)));
                }
                at += segment.len();
                if marker == 0xDA {
                    if size.is_none() {
                        return Err(invalid(
                            F,
                            "a scan (SOS) starts before any SOF frame header",
                        ));
                    }
                    at = skip_entropy_coded(bytes, at)
                        .ok_or_else(|| truncated(F, "the scan data ends before the EOI marker"))?;
                }
            }
        }
    }
    let (width, height) =
        size.ok_or_else(|| invalid(F, "EOI comes before any SOF frame header"))?;
    Ok(still(width, height))
}

/// Skips entropy-coded scan data from `at` (where stuffed `FF 00` and the `RSTn` markers
/// belong to the data); returns the offset of the `FF` of the next marker.
fn skip_entropy_coded(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let ff = at + memchr::memchr(0xFF, bytes.get(at..)?)?;
        match *bytes.get(ff + 1)? {
            0x00 | 0xD0..=0xD7 => at = ff + 2,
            _ => return Some(ff),
        }
    }
}

// ---------------------------------------------------------------------------------
// WEBP.

/// One RIFF chunk.
struct RiffChunk<'a> {
    /// The four-letter type.
    kind: &'a [u8],
    /// The payload, without the padding byte.
    data: &'a [u8],
    /// Where the next chunk starts.
    next: usize,
}

/// The RIFF chunk at `at` in `body`; `None` at the end.
fn riff_chunk(body: &[u8], at: usize) -> Result<Option<RiffChunk<'_>>, MediaError> {
    const F: &str = "WEBP";
    if at >= body.len() {
        return Ok(None);
    }
    let (Some(kind), Some(len)) = (slice(body, at, 4), le_u32(body, at + 4)) else {
        return Err(truncated(F, "a chunk header is cut short"));
    };
    let data = usize::try_from(len)
        .ok()
        .and_then(|len| slice(body, at + 8, len))
        .ok_or_else(|| truncated(F, format!("the {} chunk is cut short", fourcc(kind))))?;
    // Odd-sized payloads are followed by one padding byte.
    let end = at + 8 + data.len();
    let next = (end + data.len() % 2).min(body.len());
    Ok(Some(RiffChunk { kind, data, next }))
}

/// Reads a WEBP from its RIFF container.
fn probe_webp(bytes: &[u8]) -> Result<MediaInfo, MediaError> {
    const F: &str = "WEBP";
    let riff_size = le_u32(bytes, 4).unwrap_or(0);
    let riff_end = usize::try_from(riff_size)
        .ok()
        .and_then(|size| size.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            truncated(
                F,
                format!(
                    "the RIFF container is cut short (its header gives {} bytes, the file has {})",
                    u64::from(riff_size) + 8,
                    bytes.len()
                ),
            )
        })?;
    let body = &bytes[..riff_end];
    let first = riff_chunk(body, 12)?
        .ok_or_else(|| truncated(F, "the file ends before its first chunk"))?;
    match first.kind {
        b"VP8 " => {
            let data = first.data;
            let (Some(tag), Some(start), Some(w), Some(h)) = (
                data.first(),
                slice(data, 3, 3),
                le_u16(data, 6),
                le_u16(data, 8),
            ) else {
                return Err(truncated(F, "the VP8 chunk is cut short"));
            };
            if tag & 1 != 0 {
                return Err(invalid(F, "the VP8 frame is not a key frame"));
            }
            if start != [0x9D, 0x01, 0x2A] {
                return Err(invalid(F, "the VP8 frame has no start code (9D 01 2A)"));
            }
            let (width, height) = (u64::from(w & 0x3FFF), u64::from(h & 0x3FFF));
            nonzero_size(F, "the VP8 frame header", width, height)?;
            Ok(still(width, height))
        }
        b"VP8L" => {
            let (Some(&signature), Some(bits)) = (first.data.first(), le_u32(first.data, 1)) else {
                return Err(truncated(F, "the VP8L chunk is cut short"));
            };
            if signature != 0x2F {
                return Err(invalid(
                    F,
                    format!("the VP8L signature byte is 0x{signature:02X}, not 0x2F"),
                ));
            }
            let width = u64::from(bits & 0x3FFF) + 1;
            let height = u64::from((bits >> 14) & 0x3FFF) + 1;
            Ok(still(width, height))
        }
        b"VP8X" => probe_webp_extended(body, &first),
        other => Err(invalid(
            F,
            format!(
                "the first chunk is {}, not VP8, VP8L or VP8X",
                fourcc(other)
            ),
        )),
    }
}

/// Reads an extended WEBP: the canvas from `VP8X`, then either the `ANIM` and `ANMF`
/// chunks of an animation or the image chunk of a still.
fn probe_webp_extended(body: &[u8], vp8x: &RiffChunk<'_>) -> Result<MediaInfo, MediaError> {
    const F: &str = "WEBP";
    let (Some(&flags), Some(w), Some(h)) = (
        vp8x.data.first(),
        le_u24(vp8x.data, 4),
        le_u24(vp8x.data, 7),
    ) else {
        return Err(truncated(F, "the VP8X chunk is cut short"));
    };
    let width = u64::from(w) + 1;
    let height = u64::from(h) + 1;
    let animated = flags & 0x02 != 0;
    let mut has_anim = false;
    let mut has_image = false;
    let mut frames: u64 = 0;
    let mut duration_ms: u64 = 0;
    let mut at = vp8x.next;
    while let Some(chunk) = riff_chunk(body, at)? {
        match chunk.kind {
            b"ANIM" => has_anim = true,
            b"ANMF" => {
                // x(3) y(3) width-1(3) height-1(3) duration(3) flags(1), then the frame.
                let duration = le_u24(chunk.data, 12)
                    .filter(|_| chunk.data.len() >= 16)
                    .ok_or_else(|| {
                        truncated(F, format!("ANMF chunk {} is cut short", frames + 1))
                    })?;
                frames += 1;
                duration_ms = duration_ms.saturating_add(u64::from(duration));
            }
            b"VP8 " | b"VP8L" => has_image = true,
            _ => {}
        }
        at = chunk.next;
    }
    if !animated {
        if !has_image {
            return Err(invalid(F, "the VP8X file has no VP8 or VP8L image chunk"));
        }
        return Ok(still(width, height));
    }
    if !has_anim {
        return Err(invalid(
            F,
            "the VP8X header announces an animation but there is no ANIM chunk",
        ));
    }
    if frames == 0 {
        return Err(invalid(F, "the animation has no ANMF frame chunk"));
    }
    Ok(animation(width, height, frames, duration_ms))
}

// ---------------------------------------------------------------------------------
// GIF.

/// Skips a sequence of GIF data sub-blocks starting at `at`; returns the offset after
/// the terminating empty block.
fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let size = usize::from(*bytes.get(at)?);
        at += 1;
        if size == 0 {
            return Some(at);
        }
        at += size;
        if at > bytes.len() {
            return None;
        }
    }
}

/// The length of a GIF color table from a packed byte whose bit 7 says it is there.
fn color_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

/// Walks the GIF blocks to the trailer, counting images and summing delays.
fn probe_gif(bytes: &[u8]) -> Result<MediaInfo, MediaError> {
    const F: &str = "GIF";
    let (Some(w), Some(h), Some(&packed)) = (le_u16(bytes, 6), le_u16(bytes, 8), bytes.get(10))
    else {
        return Err(truncated(F, "the logical screen descriptor is cut short"));
    };
    let (width, height) = (u64::from(w), u64::from(h));
    nonzero_size(F, "the logical screen descriptor", width, height)?;
    let mut at = 13 + color_table_len(packed);
    if at > bytes.len() {
        return Err(truncated(F, "the global color table is cut short"));
    }
    let mut frames: u64 = 0;
    let mut hundredths: u64 = 0;
    let mut pending_delay: u64 = 0;
    loop {
        let Some(&introducer) = bytes.get(at) else {
            return Err(truncated(F, "the file ends before the trailer (0x3B)"));
        };
        match introducer {
            0x3B => break,
            0x21 => {
                let Some(&label) = bytes.get(at + 1) else {
                    return Err(truncated(F, "an extension block is cut short"));
                };
                if label == 0xF9 {
                    // block size 4, packed fields, delay (1/100 s), transparent index
                    let delay = le_u16(bytes, at + 4)
                        .filter(|_| bytes.get(at + 2).is_some_and(|&size| size >= 4))
                        .ok_or_else(|| truncated(F, "a graphic control extension is cut short"))?;
                    pending_delay = u64::from(delay);
                }
                at = skip_sub_blocks(bytes, at + 2).ok_or_else(|| {
                    truncated(F, format!("the extension block 0x{label:02X} is cut short"))
                })?;
            }
            0x2C => {
                let frame = frames + 1;
                // left, top, width, height (2 bytes each), packed fields
                let Some(&packed) = bytes.get(at + 9) else {
                    return Err(truncated(
                        F,
                        format!("image descriptor {frame} is cut short"),
                    ));
                };
                at += 10 + color_table_len(packed);
                // The LZW minimum code size, then the image data sub-blocks.
                at = bytes
                    .get(at)
                    .and_then(|_| skip_sub_blocks(bytes, at + 1))
                    .ok_or_else(|| {
                        truncated(F, format!("the image data of frame {frame} is cut short"))
                    })?;
                frames = frame;
                hundredths = hundredths.saturating_add(pending_delay);
                pending_delay = 0;
            }
            other => {
                return Err(invalid(
                    F,
                    format!("unknown block type 0x{other:02X} at offset {at}"),
                ));
            }
        }
    }
    if frames == 0 {
        return Err(invalid(F, "the file holds no image"));
    }
    Ok(animation(
        width,
        height,
        frames,
        hundredths.saturating_mul(10),
    ))
}

// ---------------------------------------------------------------------------------
// Video, through ffprobe.

/// [`probe_video_file`] with the ffprobe program named.
fn probe_video_file_with(ffprobe: &str, path: &Path) -> Result<MediaInfo, MediaError> {
    let output = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=width,height,nb_read_frames,avg_frame_rate,r_frame_rate,duration:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                MediaError::NoFfprobe
            } else {
                MediaError::FfprobeRun {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let mut end = stderr.len().min(MAX_STDERR_BYTES);
        while !stderr.is_char_boundary(end) {
            end -= 1;
        }
        return Err(MediaError::FfprobeFailed {
            path: path.to_path_buf(),
            status: output.status.to_string(),
            stderr: stderr[..end].to_owned(),
        });
    }
    parse_ffprobe_report(path, &output.stdout)
}

/// Reads ffprobe's JSON report (see [`probe_video_file`]).
fn parse_ffprobe_report(path: &Path, json: &[u8]) -> Result<MediaInfo, MediaError> {
    let report = |what: &str| MediaError::FfprobeReport {
        path: path.to_path_buf(),
        what: what.to_owned(),
    };
    let value: Value =
        serde_json::from_slice(json).map_err(|e| report(&format!("it is not JSON ({e})")))?;
    let stream = value
        .get("streams")
        .and_then(Value::as_array)
        .and_then(|streams| streams.first())
        .ok_or_else(|| report("it lists no video stream"))?;
    let width = stream
        .get("width")
        .and_then(Value::as_u64)
        .filter(|&w| w > 0)
        .ok_or_else(|| report("the video stream has no width"))?;
    let height = stream
        .get("height")
        .and_then(Value::as_u64)
        .filter(|&h| h > 0)
        .ok_or_else(|| report("the video stream has no height"))?;
    let frames = stream
        .get("nb_read_frames")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
        .ok_or_else(|| report("the video stream has no frame count (nb_read_frames)"))?;
    let duration_ms = stream
        .get("duration")
        .and_then(Value::as_str)
        .and_then(seconds_to_ms)
        .or_else(|| {
            value
                .pointer("/format/duration")
                .and_then(Value::as_str)
                .and_then(seconds_to_ms)
        })
        .ok_or_else(|| report("neither the video stream nor the container gives a duration"))?;
    let rate = |key: &str| stream.get(key).and_then(Value::as_str).and_then(frame_rate);
    let fps = rate("avg_frame_rate")
        .or_else(|| rate("r_frame_rate"))
        .or_else(|| (duration_ms > 0).then(|| to_f64(frames) * 1000.0 / to_f64(duration_ms)))
        .map_or(0.0, round3);
    Ok(MediaInfo {
        width,
        height,
        frames,
        fps,
        duration_ms,
    })
}

/// A duration in seconds as ffprobe writes it ("1.010000") in whole milliseconds,
/// rounded; `None` for "N/A" or anything else that is not a plain decimal.
fn seconds_to_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction = fraction.as_bytes();
    let mut ms: u64 = 0;
    for i in 0..3 {
        ms = ms * 10 + fraction.get(i).map_or(0, |d| u64::from(d - b'0'));
    }
    if fraction.get(3).is_some_and(|&d| d >= b'5') {
        ms += 1;
    }
    whole.checked_mul(1000)?.checked_add(ms)
}

/// A frame rate as ffprobe writes it ("95/12"); `None` for "0/0" and the like.
fn frame_rate(text: &str) -> Option<f64> {
    let (num, den) = text.trim().split_once('/')?;
    let (num, den): (u64, u64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0 && den > 0).then(|| to_f64(num) / to_f64(den))
}

#[cfg(test)]
mod tests;
