use super::*;

/// A fixture written by `tests/fixtures/media/make_fixtures.sh`.
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/media/",
            $name
        ))
        .as_slice()
    };
}

/// A fixture's path.
macro_rules! fixture_path {
    ($name:literal) => {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/media/",
            $name
        ))
    };
}

/// Every fixture with the format name its errors carry ("" for the videos).
fn fixtures() -> [(&'static str, &'static [u8], &'static str); 12] {
    [
        ("still.png", fixture!("still.png"), "PNG"),
        ("still.jpg", fixture!("still.jpg"), "JPEG"),
        (
            "still_lossless.webp",
            fixture!("still_lossless.webp"),
            "WEBP",
        ),
        ("still_lossy.webp", fixture!("still_lossy.webp"), "WEBP"),
        ("anim.gif", fixture!("anim.gif"), "GIF"),
        ("anim_ffmpeg.png", fixture!("anim_ffmpeg.png"), "PNG"),
        ("anim_comfyui.png", fixture!("anim_comfyui.png"), "PNG"),
        ("anim_ffmpeg.webp", fixture!("anim_ffmpeg.webp"), "WEBP"),
        ("anim_comfyui.webp", fixture!("anim_comfyui.webp"), "WEBP"),
        (
            "anim_comfyui_live.webp",
            fixture!("anim_comfyui_live.webp"),
            "WEBP",
        ),
        // The video containers: their errors name no image format.
        ("clip.mp4", fixture!("clip.mp4"), ""),
        ("clip.webm", fixture!("clip.webm"), ""),
    ]
}

fn info(width: u64, height: u64, frames: u64, fps: f64, duration_ms: u64) -> MediaInfo {
    MediaInfo {
        width,
        height,
        frames,
        fps,
        duration_ms,
    }
}

// The expected values below are what make_fixtures.sh printed from ffprobe 5.1 and
// Pillow 13 for these files (64x48 testsrc); fps for animations is
// frames * 1000 / duration_ms as this module defines it.

#[test]
fn stills_have_their_size_and_one_frame() {
    // ffprobe: width=64 height=48 nb_read_frames=1; Pillow: 64x48 frames=1.
    for (name, bytes) in [
        ("still.png", fixture!("still.png")),
        ("still.jpg", fixture!("still.jpg")),
        ("still_lossless.webp", fixture!("still_lossless.webp")),
        ("still_lossy.webp", fixture!("still_lossy.webp")),
    ] {
        assert_eq!(
            probe_bytes(bytes).unwrap(),
            info(64, 48, 1, 0.0, 0),
            "{name}"
        );
    }
}

#[test]
fn gif_counts_images_and_sums_hundredths() {
    // ffprobe: 64x48, nb_read_frames=8, duration=1.010000 (avg_frame_rate 95/12);
    // Pillow: frames=8 duration_ms=1010 (delays 13,12,13,12,13,12,13,13 cs).
    assert_eq!(
        probe_bytes(fixture!("anim.gif")).unwrap(),
        info(64, 48, 8, 7.921, 1010)
    );
}

#[test]
fn apng_from_ffmpeg_and_from_comfyui() {
    // ffmpeg's apng muxer: ffprobe 64x48 nb_read_frames=8 avg_frame_rate=8/1;
    // Pillow: frames=8 duration_ms=1000.0.
    assert_eq!(
        probe_bytes(fixture!("anim_ffmpeg.png")).unwrap(),
        info(64, 48, 8, 8.0, 1000)
    );
    // SaveAnimatedPNG at 6 fps writes int(1000/6) = 166 ms (83/500 s) per frame:
    // ffprobe 64x48 nb_read_frames=6; Pillow: frames=6 duration_ms=996.0.
    assert_eq!(
        probe_bytes(fixture!("anim_comfyui.png")).unwrap(),
        info(64, 48, 6, 6.024, 996)
    );
}

#[test]
fn animated_webp_from_ffmpeg_and_from_comfyui() {
    // ffmpeg 5 cannot decode animated WEBP; Pillow: 64x48 frames=8 duration_ms=1000.
    assert_eq!(
        probe_bytes(fixture!("anim_ffmpeg.webp")).unwrap(),
        info(64, 48, 8, 8.0, 1000)
    );
    // SaveAnimatedWEBP (EXIF prompt chunk after the frames): Pillow: 64x48
    // frames=6 duration_ms=996.
    assert_eq!(
        probe_bytes(fixture!("anim_comfyui.webp")).unwrap(),
        info(64, 48, 6, 6.024, 996)
    );
}

#[test]
fn an_animated_webp_a_live_comfyui_wrote() {
    // ComfyUI 0.33's SaveAnimatedWEBP on the live server (CPU): 12 frames of two
    // colours alternating at 6 fps, 96x64; it writes int(1000/6) = 166 ms each.
    assert_eq!(
        probe_bytes(fixture!("anim_comfyui_live.webp")).unwrap(),
        info(96, 64, 12, 6.024, 1992)
    );
}

#[test]
fn every_prefix_of_every_fixture_is_an_error_naming_the_format() {
    for (name, bytes, format) in fixtures() {
        for len in 0..bytes.len() {
            let Err(error) = probe_bytes(&bytes[..len]) else {
                panic!("{name} cut to {len} bytes was accepted");
            };
            let message = error.to_string();
            if len > 0 && !format.is_empty() {
                assert!(
                    message.starts_with(&format!("{format}: ")),
                    "{name} cut to {len} bytes: {message}"
                );
            }
        }
    }
}

#[test]
fn cut_files_say_what_is_missing() {
    let webp = fixture!("anim_comfyui.webp");
    // RIFF header (12) + VP8X chunk header (8) + 4 of its 10 bytes.
    let mut cut = webp[..24].to_vec();
    let len = u32::try_from(cut.len() - 8).unwrap();
    cut[4..8].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        probe_bytes(&cut).unwrap_err().to_string(),
        "WEBP: the VP8X chunk is cut short"
    );
    let png = fixture!("still.png");
    assert_eq!(
        probe_bytes(&png[..png.len() - 12]).unwrap_err().to_string(),
        "PNG: the file ends before the IEND chunk"
    );
    let jpeg = fixture!("still.jpg");
    assert_eq!(
        probe_bytes(&jpeg[..jpeg.len() - 2])
            .unwrap_err()
            .to_string(),
        "JPEG: the scan data ends before the EOI marker"
    );
    let gif = fixture!("anim.gif");
    assert_eq!(
        probe_bytes(&gif[..gif.len() - 1]).unwrap_err().to_string(),
        "GIF: the file ends before the trailer (0x3B)"
    );
    assert!(
        probe_bytes(&webp[..100])
            .unwrap_err()
            .to_string()
            .starts_with("WEBP: the RIFF container is cut short")
    );
}

#[test]
fn changed_bytes_never_panic() {
    for (_, bytes, _) in fixtures() {
        let mut copy = bytes.to_vec();
        for at in 0..copy.len() {
            let was = copy[at];
            for value in [0x00, 0xFF, was ^ 0x01, 0x80] {
                copy[at] = value;
                let _ = probe_bytes(&copy);
            }
            copy[at] = was;
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_after_a_signature_never_panic(
        signature in 0usize..6,
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        let magic: &[u8] = [
            PNG_MAGIC,
            JPEG_MAGIC,
            b"RIFF\x00\x01\x00\x00WEBPVP8X",
            b"GIF89a",
            b"\x00\x00\x00\x18ftypisom",
            b"",
        ][signature];
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&tail);
        let _ = probe_bytes(&bytes);
        let _ = probe(&bytes, None);
    }
}

#[test]
fn garbage_is_an_error() {
    let error = probe_bytes(b"this is not an image at all").unwrap_err();
    assert!(
        matches!(error, MediaError::Unrecognized { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "not a PNG, JPEG, WEBP or GIF image nor an MP4/MOV/WEBM/MKV video \
         (the file begins 74 68 69 73 20 69 73 20 6E 6F 74 20 ..)"
    );
    assert!(matches!(probe_bytes(b""), Err(MediaError::Empty)));
    assert!(matches!(
        probe_bytes(b"RIFF\x04\x00\x00\x00WAVE"),
        Err(MediaError::Unrecognized { .. })
    ));
}

#[test]
fn videos_are_told_apart_by_their_magic() {
    assert!(is_video_container(fixture!("clip.mp4")));
    assert!(is_video_container(fixture!("clip.webm")));
    for (name, bytes, format) in fixtures() {
        assert_eq!(is_video_container(bytes), format.is_empty(), "{name}");
    }
    let error = probe(fixture!("clip.mp4"), None).unwrap_err();
    assert!(
        matches!(
            error,
            MediaError::VideoNeedsPath {
                container: "MP4/MOV"
            }
        ),
        "{error:?}"
    );
    assert!(matches!(
        probe_bytes(fixture!("clip.webm")),
        Err(MediaError::VideoNeedsPath {
            container: "WEBM/MKV"
        })
    ));
    // An image given with a path is still read from its bytes.
    assert_eq!(
        probe(fixture!("still.png"), Some(fixture_path!("clip.mp4"))).unwrap(),
        info(64, 48, 1, 0.0, 0)
    );
}

#[test]
fn a_missing_ffprobe_says_to_install_ffmpeg() {
    let error =
        probe_video_file_with("ffprobe-not-installed-here", fixture_path!("clip.mp4")).unwrap_err();
    assert!(matches!(error, MediaError::NoFfprobe), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("install ffmpeg"), "{message}");
    assert!(message.contains("apt-get install ffmpeg"), "{message}");
}

#[test]
fn ffprobe_reports_are_read() {
    let path = Path::new("clip.webm");
    // What ffprobe 5.1 printed for clip.webm: no stream duration, so the
    // container's.
    let webm = br#"{"programs": [], "streams": [{"width": 64, "height": 48,
        "r_frame_rate": "8/1", "avg_frame_rate": "8/1", "nb_read_frames": "8"}],
        "format": {"duration": "1.000000"}}"#;
    assert_eq!(
        parse_ffprobe_report(path, webm).unwrap(),
        info(64, 48, 8, 8.0, 1000)
    );
    // And for anim.gif: the stream's own duration and average rate.
    let gif = br#"{"programs": [], "streams": [{"width": 64, "height": 48,
        "r_frame_rate": "8/1", "avg_frame_rate": "95/12", "duration": "1.010000",
        "nb_read_frames": "8"}], "format": {"duration": "1.010000"}}"#;
    assert_eq!(
        parse_ffprobe_report(path, gif).unwrap(),
        info(64, 48, 8, 7.917, 1010)
    );
    // ffprobe on a still: no duration anywhere.
    let still_report = br#"{"streams": [{"width": 64, "height": 48, "nb_read_frames": "1"}],
        "format": {}}"#;
    assert!(
        parse_ffprobe_report(path, still_report)
            .unwrap_err()
            .to_string()
            .contains("gives a duration")
    );
    let none = br#"{"streams": [], "format": {"duration": "1.0"}}"#;
    assert_eq!(
        parse_ffprobe_report(path, none).unwrap_err().to_string(),
        "ffprobe's report on clip.webm: it lists no video stream"
    );
    assert!(parse_ffprobe_report(path, b"{").is_err());
    assert_eq!(seconds_to_ms("1.0105"), Some(1011));
    assert_eq!(seconds_to_ms("12"), Some(12_000));
    assert_eq!(seconds_to_ms("N/A"), None);
    assert_eq!(seconds_to_ms("-1.0"), None);
    assert_eq!(frame_rate("0/0"), None);
    assert_eq!(frame_rate("30000/1001").map(round3), Some(29.97));
}

/// Whether ffprobe is installed; without it a loud banner, and a failure when
/// `REELMESH_REQUIRE_FFPROBE` is set (as CI does).
fn ffprobe_or_skip(test: &str) -> bool {
    let found = Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let required = std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_some();
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! {test} NOT RUN: ffprobe is missing.\n\
             !! It probes MP4/WEBM takes the way a node does; CI installs ffmpeg\n\
             !! and sets REELMESH_REQUIRE_FFPROBE=1.\n\
             !! Run: apt-get install ffmpeg && cargo test -p reelmesh-node --lib media\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        assert!(
            !required,
            "REELMESH_REQUIRE_FFPROBE is set but ffprobe is missing: install ffmpeg \
             (apt-get install ffmpeg)"
        );
    }
    found
}

#[test]
fn videos_are_probed_with_ffprobe() {
    if !ffprobe_or_skip("videos_are_probed_with_ffprobe") {
        return;
    }
    // ffprobe: width=64 height=48 avg_frame_rate=8/1 duration=1.000000
    // nb_read_frames=8 (libx264 MP4).
    let mp4 = fixture_path!("clip.mp4");
    assert_eq!(probe_video_file(mp4).unwrap(), info(64, 48, 8, 8.0, 1000));
    assert_eq!(
        probe(fixture!("clip.mp4"), Some(mp4)).unwrap(),
        info(64, 48, 8, 8.0, 1000)
    );
    // ffprobe: width=64 height=48 avg_frame_rate=8/1 stream duration N/A,
    // format duration=1.000000, nb_read_frames=8 (libvpx WEBM).
    let webm = fixture_path!("clip.webm");
    assert_eq!(
        probe(fixture!("clip.webm"), Some(webm)).unwrap(),
        info(64, 48, 8, 8.0, 1000)
    );
}

#[test]
fn ffprobe_failures_are_errors() {
    if !ffprobe_or_skip("ffprobe_failures_are_errors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mp4");
    std::fs::write(&garbage, b"\x00\x00\x00\x18ftypisom but nothing after").unwrap();
    let error = probe_video_file(&garbage).unwrap_err();
    assert!(
        matches!(error, MediaError::FfprobeFailed { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("garbage.mp4"), "{error}");
    let missing = dir.path().join("missing.webm");
    assert!(matches!(
        probe_video_file(&missing),
        Err(MediaError::FfprobeFailed { .. })
    ));
}
