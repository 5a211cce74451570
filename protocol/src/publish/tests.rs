use super::*;

fn media(code: &str, frames: u64, still: bool) -> CutMedia {
    let ext = if still { "png" } else { "mp4" };
    CutMedia {
        name: format!("{code}_take1.{ext}"),
        path: format!("media/{code}_take1.{ext}"),
        url: format!("file:///tmp/cut/media/{code}_take1.{ext}"),
        width: 1280,
        height: 720,
        still,
        frames,
    }
}

/// Clips of the given lengths; every third has no take.
fn cut(rate: FrameRate, lengths: &[u64]) -> Cut {
    Cut {
        title: "밤의 골목 (Night Alley)".into(),
        rate,
        clips: lengths
            .iter()
            .enumerate()
            .map(|(i, frames)| {
                let code = format!("SHT-{:05}", i + 1);
                CutClip {
                    media: (i % 3 != 2).then(|| media(&code, *frames, i % 2 == 0)),
                    code,
                    action: format!("장면 {i} & <것>"),
                    frames: *frames,
                }
            })
            .collect(),
    }
}

/// An hour of frames at `rate` cut into shots of varied lengths.
fn hour(rate: FrameRate) -> Vec<u64> {
    let total = Timecode::parse(
        if rate.is_drop_frame() {
            "01:00:00;00"
        } else {
            "01:00:00:00"
        },
        rate,
    )
    .expect("tc")
    .to_frames(rate)
    .expect("frames");
    let mut lengths = Vec::new();
    let mut left = total;
    let mut i = 0_u64;
    while left > 0 {
        let n = (37 + (i * 7919) % 400).min(left);
        lengths.push(n);
        left -= n;
        i += 1;
    }
    lengths
}

fn frames_of(tc_text: &str, rate: FrameRate) -> u64 {
    Timecode::parse(tc_text, rate)
        .expect("timecode")
        .to_frames(rate)
        .expect("frames")
}

#[test]
fn reel_names_fit_eight_characters() {
    assert_eq!(reel_name("SHT-00012"), "SHT00012");
    assert_eq!(reel_name("SHT-123456"), "SHT12345");
    assert_eq!(reel_name("샷"), "AX");
}

#[test]
fn drop_frame_edl_timecodes_skip_labels_at_each_minute_but_the_tenth() {
    for (rate, minute) in [
        (FrameRate::Fps29_97Df, 1800_u64),
        (FrameRate::Fps59_94Df, 3600_u64),
    ] {
        // A first shot of one minute of labels, then ten shots up to the 10-minute
        // boundary.
        let mut lengths = vec![minute];
        lengths.extend(std::iter::repeat_n(minute - minute / 900, 9));
        let edl = edl(&cut(rate, &lengths));
        assert!(edl.contains("FCM: DROP FRAME"), "{edl}");
        let events: Vec<&str> = edl.lines().filter(|l| l.starts_with('0')).collect();
        // The first shot ends one minute in: the labels ;00 and ;01 (;00 ... ;03
        // at 59.94) do not exist there, so its out is ;02 (;04).
        let first_out = events[0].split_whitespace().last().expect("out");
        let expected = if rate == FrameRate::Fps29_97Df {
            "01:01:00;02"
        } else {
            "01:01:00;04"
        };
        assert_eq!(first_out, expected, "{edl}");
        // Ten minutes in, nothing is skipped: the last shot ends on ;00.
        let last_out = events
            .last()
            .expect("event")
            .split_whitespace()
            .last()
            .expect("out");
        assert_eq!(last_out, "01:10:00;00", "{edl}");
        for line in &events {
            assert!(line.contains(';'), "drop-frame timecodes use ';': {line}");
        }
    }
    let ndf = edl(&cut(FrameRate::Fps24, &[24, 48]));
    assert!(ndf.contains("FCM: NON-DROP FRAME"));
    assert!(!ndf.contains(';'));
}

#[test]
fn an_edl_event_line_keeps_the_standard_columns() {
    let edl = edl(&cut(FrameRate::Fps24, &[72, 96, 48]));
    let lines: Vec<&str> = edl.lines().collect();
    assert_eq!(lines[0], "TITLE: __ __ (Night Alley)");
    assert_eq!(
        lines[3],
        "001  SHT00001 V     C        00:00:00:00 00:00:03:00 01:00:00:00 01:00:03:00"
    );
    assert_eq!(lines[4], "* FROM CLIP NAME: SHT-00001_take1.png");
    // The third shot has no take: black.
    assert!(
        edl.contains(
            "003  BL       V     C        00:00:00:00 00:00:02:00 01:00:07:00 01:00:09:00"
        )
    );
}

#[test]
fn fcpxml_times_are_exact_rationals() {
    assert_eq!(fcpxml_time(1, FrameRate::Fps23_976), "1001/24000s");
    assert_eq!(fcpxml_time(24, FrameRate::Fps24), "1s");
    assert_eq!(fcpxml_time(72, FrameRate::Fps23_976), "3003/1000s");
    assert_eq!(fcpxml_time(1, FrameRate::Fps29_97Df), "1001/30000s");
    assert_eq!(fcpxml_time(0, FrameRate::Fps25), "0s");
}

/// `a/bs` or `as` back to frames at `rate` (must be whole).
fn fcpxml_frames(text: &str, rate: FrameRate) -> u64 {
    let text = text.trim_end_matches('s');
    let (top, bottom) = text.split_once('/').map_or((text, "1"), |(t, b)| (t, b));
    let (top, bottom): (u64, u64) = (top.parse().expect("top"), bottom.parse().expect("bottom"));
    let (num, den) = rate.rational();
    // seconds·num/den = frames
    let frames_num = top * u64::from(num);
    let frames_den = bottom * u64::from(den);
    assert_eq!(
        frames_num % frames_den,
        0,
        "{text} is not a whole frame at {rate:?}"
    );
    frames_num / frames_den
}

fn attr<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + key.len();
    let end = line[at..].find('"').expect("closing quote") + at;
    &line[at..end]
}

fn tag<'a>(block: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    block
        .match_indices(&open)
        .map(|(at, _)| {
            let start = at + open.len();
            let end = block[start..].find(&close).expect("close") + start;
            &block[start..end]
        })
        .collect()
}

#[test]
fn an_hour_round_trips_through_every_format_without_drift() {
    for rate in [
        FrameRate::Fps23_976,
        FrameRate::Fps29_97Df,
        FrameRate::Fps59_94Df,
    ] {
        let lengths = hour(rate);
        let total: u64 = lengths.iter().sum();
        let cut = cut(rate, &lengths);
        let start = start_frame(rate);

        // EDL: every record in is the previous record out; the last ends an hour in.
        let edl = edl(&cut);
        let mut expected = start;
        for (line, frames) in edl
            .lines()
            .filter(|l| l.starts_with(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']))
            .zip(&lengths)
        {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (rin, rout) = (cols[cols.len() - 2], cols[cols.len() - 1]);
            assert_eq!(frames_of(rin, rate), expected, "{line}");
            assert_eq!(frames_of(rout, rate), expected + frames, "{line}");
            expected += frames;
        }
        assert_eq!(expected, start + total);

        // FCPXML: offsets and durations are whole frames that add up.
        let xml = fcpxml(&cut);
        let mut at = start;
        for line in xml
            .lines()
            .filter(|l| l.contains("<asset-clip ") || l.contains("<gap "))
        {
            assert_eq!(fcpxml_frames(attr(line, "offset"), rate), at, "{line}");
            at += fcpxml_frames(attr(line, "duration"), rate);
        }
        assert_eq!(at, start + total, "{rate:?}");
        let sequence = xml
            .lines()
            .find(|l| l.contains("<sequence "))
            .expect("sequence");
        assert_eq!(fcpxml_frames(attr(sequence, "duration"), rate), total);

        // xmeml: clip items start where the timeline says and end with it.
        let x = xmeml(&cut);
        assert_eq!(tag(&x, "duration")[0].parse::<u64>().ok(), Some(total));
        let ends: Vec<u64> = tag(&x, "end")
            .iter()
            .map(|e| e.parse().expect("end"))
            .collect();
        let mut placed = 0;
        let mut with_take = Vec::new();
        for (i, frames) in lengths.iter().enumerate() {
            placed += frames;
            if i % 3 != 2 {
                with_take.push(placed);
            }
        }
        assert_eq!(ends, with_take);

        // OTIO: the durations add up to the hour at the exact rate.
        let otio: serde_json::Value = serde_json::from_str(&otio(&cut)).expect("json");
        let children = otio["tracks"]["children"][0]["children"]
            .as_array()
            .expect("clips");
        let sum: f64 = children
            .iter()
            .map(|c| {
                c["source_range"]["duration"]["value"]
                    .as_f64()
                    .expect("value")
            })
            .sum();
        assert_eq!(sum as u64, total);
        let rate_value = children[0]["source_range"]["duration"]["rate"]
            .as_f64()
            .expect("rate");
        let (num, den) = rate.rational();
        assert!((rate_value - f64::from(num) / f64::from(den)).abs() < 1e-12);
    }
}

#[test]
fn xmeml_rates_say_ntsc_for_the_thousand_and_one_rates() {
    let x = xmeml(&cut(FrameRate::Fps23_976, &[24]));
    assert!(
        x.contains("<rate><timebase>24</timebase><ntsc>TRUE</ntsc></rate>"),
        "{x}"
    );
    let x = xmeml(&cut(FrameRate::Fps29_97Df, &[30]));
    assert!(
        x.contains("<timebase>30</timebase><ntsc>TRUE</ntsc>"),
        "{x}"
    );
    assert!(x.contains("<displayformat>DF</displayformat>"));
    let x = xmeml(&cut(FrameRate::Fps59_94Df, &[60]));
    assert!(x.contains("<timebase>60</timebase><ntsc>TRUE</ntsc>"));
    let x = xmeml(&cut(FrameRate::Fps25, &[25]));
    assert!(x.contains("<timebase>25</timebase><ntsc>FALSE</ntsc>"));
}

#[test]
fn text_is_escaped_in_xml() {
    let mut c = cut(FrameRate::Fps24, &[24]);
    c.title = "A & B <cut>".into();
    let x = fcpxml(&c);
    assert!(x.contains("A &amp; B &lt;cut&gt;"));
    assert!(!x.contains("A & B"));
    let x = xmeml(&c);
    assert!(x.contains("<name>A &amp; B &lt;cut&gt;</name>"));
}
