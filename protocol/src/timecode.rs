//! Frame-accurate timecode math: frame counts <-> seconds <-> SMPTE timecode.
//!
//! This module owns the set of frame rates the project supports ([`FrameRate`]),
//! their exact rational playback speeds, the conversion between frame counts and
//! wall-clock seconds, and the conversion between frame counts and SMPTE timecode
//! labels ([`Timecode`]), including parsing and display.
//!
//! Frame 0 is `00:00:00:00`. Hours do not wrap at 24.
//!
//! Drop-frame rule: 29.97 and 59.94 fps run slightly slower than the 30 and 60
//! frames per second that their timecode counts, so drop-frame (DF) timecode skips
//! *labels* (never actual frames) to stay in step with the clock. 29.97 DF skips the
//! frame labels `00` and `01` at the start of every minute, except minutes divisible
//! by 10. 59.94 DF skips `00` to `03` in the same way. So at 29.97 DF, `00:00:59;29` is
//! followed by `00:01:00;02`, and `00:09:59;29` by `00:10:00;00`. One hour is
//! 107 892 frames at 29.97 DF and 215 784 frames at 59.94 DF. DF timecode is written
//! with `;` before the frames. 23.976 fps is non-drop: its timecode counts 24 frames
//! per second and drifts from the clock by 0.1%.
//!
//! Why this is hand-written rather than built on the `vtc` crate: we checked
//! `vtc` 0.1.14 against the values above, and its drop-frame conversion is wrong.
//! It computes `drops * (m - drops) / frames_per_minute` in integer arithmetic where
//! the algorithm needs `drops * floor((m - drops) / frames_per_minute)`. As a result,
//! the last frames of each dropped minute get labels that don't exist. For example,
//! 29.97 DF frame 1799 comes out as `00:01:00;00` instead of `00:00:59;29`, and
//! 59.94 DF frame 3596 as `00:00:59;59` instead of `00:00:59;56`. It also reduces the
//! frame count modulo 24 hours for the drop adjustment only. So every DF timecode past
//! 24 h is wrong: 29.97 DF frame 2 589 408 shows as `23:58:33;18`, not `24:00:00;00`.
//! It would also bring in `regex`, `num` and `lazy_static`. The correct math is short,
//! so we keep it here, with exhaustive tests.

use std::fmt;
use std::str::FromStr;

/// A frame rate supported by the project, with its timecode convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FrameRate {
    /// 24000/1001 fps (23.976), non-drop timecode counting 24 frames per second.
    Fps23_976,
    /// 24 fps.
    Fps24,
    /// 25 fps.
    Fps25,
    /// 30000/1001 fps (29.97) with drop-frame timecode.
    Fps29_97Df,
    /// 30 fps.
    Fps30,
    /// 50 fps.
    Fps50,
    /// 60000/1001 fps (59.94) with drop-frame timecode.
    Fps59_94Df,
    /// 60 fps.
    Fps60,
}

impl FrameRate {
    /// Every supported frame rate, slowest first.
    pub const ALL: [FrameRate; 8] = [
        FrameRate::Fps23_976,
        FrameRate::Fps24,
        FrameRate::Fps25,
        FrameRate::Fps29_97Df,
        FrameRate::Fps30,
        FrameRate::Fps50,
        FrameRate::Fps59_94Df,
        FrameRate::Fps60,
    ];

    /// The canonical short name, used for serialization: `"23.976"`, `"29.97df"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            FrameRate::Fps23_976 => "23.976",
            FrameRate::Fps24 => "24",
            FrameRate::Fps25 => "25",
            FrameRate::Fps29_97Df => "29.97df",
            FrameRate::Fps30 => "30",
            FrameRate::Fps50 => "50",
            FrameRate::Fps59_94Df => "59.94df",
            FrameRate::Fps60 => "60",
        }
    }

    /// A human-readable name, such as `"23.976 fps"` or `"29.97 fps drop-frame"`.
    pub fn label(self) -> &'static str {
        match self {
            FrameRate::Fps23_976 => "23.976 fps",
            FrameRate::Fps24 => "24 fps",
            FrameRate::Fps25 => "25 fps",
            FrameRate::Fps29_97Df => "29.97 fps drop-frame",
            FrameRate::Fps30 => "30 fps",
            FrameRate::Fps50 => "50 fps",
            FrameRate::Fps59_94Df => "59.94 fps drop-frame",
            FrameRate::Fps60 => "60 fps",
        }
    }

    /// The exact playback rate in frames per second, as (numerator, denominator).
    pub fn rational(self) -> (u32, u32) {
        match self {
            FrameRate::Fps23_976 => (24_000, 1001),
            FrameRate::Fps24 => (24, 1),
            FrameRate::Fps25 => (25, 1),
            FrameRate::Fps29_97Df => (30_000, 1001),
            FrameRate::Fps30 => (30, 1),
            FrameRate::Fps50 => (50, 1),
            FrameRate::Fps59_94Df => (60_000, 1001),
            FrameRate::Fps60 => (60, 1),
        }
    }

    /// Whether this rate uses drop-frame timecode.
    pub fn is_drop_frame(self) -> bool {
        matches!(self, FrameRate::Fps29_97Df | FrameRate::Fps59_94Df)
    }

    /// The nominal number of frames per timecode second (the frame field counts `0..base`).
    pub fn timecode_base(self) -> u32 {
        match self {
            FrameRate::Fps23_976 | FrameRate::Fps24 => 24,
            FrameRate::Fps25 => 25,
            FrameRate::Fps29_97Df | FrameRate::Fps30 => 30,
            FrameRate::Fps50 => 50,
            FrameRate::Fps59_94Df | FrameRate::Fps60 => 60,
        }
    }

    /// How many frame labels drop-frame timecode skips at the start of a dropped minute
    /// (0 for non-drop rates).
    fn dropped_labels(self) -> u32 {
        match self {
            FrameRate::Fps29_97Df => 2,
            FrameRate::Fps59_94Df => 4,
            _ => 0,
        }
    }

    /// The duration of `frames` frames in seconds, computed with exact integer math
    /// and then converted to `f64`.
    pub fn frames_to_seconds(self, frames: u64) -> f64 {
        let (num, den) = self.rational();
        let scaled = u128::from(frames) * u128::from(den);
        let num = u128::from(num);
        let whole = scaled / num;
        let rest = scaled % num;
        whole as f64 + rest as f64 / num as f64
    }

    /// The frame count nearest to `seconds`. Returns an error if `seconds` is NaN,
    /// infinite, negative, or too large for a `u64` frame count.
    pub fn seconds_to_frames(self, seconds: f64) -> Result<u64, TimecodeError> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(TimecodeError::InvalidSeconds { value: seconds });
        }
        let (num, den) = self.rational();
        let frames = (seconds * f64::from(num) / f64::from(den)).round();
        // 2^64 is exactly representable; anything at or above it does not fit.
        if !frames.is_finite() || frames >= 18_446_744_073_709_551_616.0 {
            return Err(TimecodeError::SecondsOutOfRange {
                value: seconds,
                rate: self,
            });
        }
        Ok(frames as u64)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drop-frame marker that may follow a rate in text, such as `"29.97 DF"`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DropMarker {
    Unspecified,
    Drop,
    NonDrop,
}

/// Rates within this distance of an NTSC rate match it, which accepts `23.98` and `23.97`.
const NTSC_TOLERANCE: f64 = 0.0075;
/// Integer rates must match (almost) exactly, which accepts `24.0`.
const EXACT_TOLERANCE: f64 = 1e-9;

fn parse_frame_rate(text: &str) -> Option<FrameRate> {
    let lower = text.trim().to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut marker = DropMarker::Unspecified;
    // Check the non-drop spellings first, because "ndf" ends with "df".
    const MARKERS: [(&str, DropMarker); 10] = [
        ("non-drop-frame", DropMarker::NonDrop),
        ("non-drop frame", DropMarker::NonDrop),
        ("non-drop", DropMarker::NonDrop),
        ("nondrop", DropMarker::NonDrop),
        ("ndf", DropMarker::NonDrop),
        ("drop-frame", DropMarker::Drop),
        ("drop frame", DropMarker::Drop),
        ("dropframe", DropMarker::Drop),
        ("drop", DropMarker::Drop),
        ("df", DropMarker::Drop),
    ];
    for (suffix, kind) in MARKERS {
        if let Some(stripped) = rest.strip_suffix(suffix) {
            rest = stripped.trim_end();
            marker = kind;
            break;
        }
    }
    if let Some(stripped) = rest.strip_suffix("fps") {
        rest = stripped.trim_end();
    }
    let rate = if let Some((num, den)) = rest.split_once('/') {
        let num: u64 = num.trim().parse().ok()?;
        let den: u64 = den.trim().parse().ok()?;
        if den == 0 {
            return None;
        }
        FrameRate::ALL.into_iter().find(|rate| {
            let (rn, rd) = rate.rational();
            u128::from(num) * u128::from(rd) == u128::from(den) * u128::from(rn)
        })?
    } else {
        let value: f64 = rest.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        FrameRate::ALL.into_iter().find(|rate| {
            let (rn, rd) = rate.rational();
            let tolerance = if rd == 1 {
                EXACT_TOLERANCE
            } else {
                NTSC_TOLERANCE
            };
            (value - f64::from(rn) / f64::from(rd)).abs() < tolerance
        })?
    };
    let marker_ok = match marker {
        DropMarker::Unspecified => true,
        DropMarker::Drop => rate.is_drop_frame(),
        DropMarker::NonDrop => !rate.is_drop_frame(),
    };
    marker_ok.then_some(rate)
}

impl FromStr for FrameRate {
    type Err = TimecodeError;

    /// Parses a frame rate leniently: `"24"`, `"24.0"`, `"23.98"`, `" 25 fps "`,
    /// `"29.97 DF"`, `"30000/1001"`, and so on. A plain `"29.97"` or `"59.94"`
    /// means drop-frame, the only 29.97 and 59.94 rates we support.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_frame_rate(s).ok_or_else(|| TimecodeError::UnsupportedFrameRate {
            value: s.trim().to_owned(),
        })
    }
}

impl TryFrom<String> for FrameRate {
    type Error = TimecodeError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<FrameRate> for String {
    fn from(rate: FrameRate) -> Self {
        rate.as_str().to_owned()
    }
}

/// An SMPTE timecode label `HH:MM:SS:FF` (`HH:MM:SS;FF` when drop-frame).
///
/// The frame rate is not stored. Conversions take it as an argument, and the
/// `drop_frame` flag only decides which separator [`Display`](fmt::Display) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timecode {
    /// Hours. These do not wrap at 24.
    pub hours: u32,
    /// Minutes, `0..=59`.
    pub minutes: u32,
    /// Seconds, `0..=59`.
    pub seconds: u32,
    /// Frame label within the second, `0..timecode_base`.
    pub frames: u32,
    /// Whether to display as drop-frame (with `;` before the frames).
    pub drop_frame: bool,
}

/// Whether drop-frame skips labels at the start of this minute: every minute except
/// those divisible by 10. (`is_multiple_of` would need Rust 1.87; the workspace targets 1.85.)
fn is_dropped_minute(minutes: u32) -> bool {
    matches!(minutes % 10, 1..=9)
}

impl Timecode {
    /// The timecode label of frame number `frame` (frame 0 is `00:00:00:00`).
    /// Hours do not wrap at 24. Beyond `u32::MAX` hours, which no real project
    /// reaches, the hours field saturates.
    pub fn from_frames(frame: u64, rate: FrameRate) -> Timecode {
        let base = u128::from(rate.timecode_base());
        let drop = u128::from(rate.dropped_labels());
        let mut label = u128::from(frame);
        if drop > 0 {
            // Real frames per dropped minute and per ten minutes.
            let per_minute = base * 60 - drop;
            let per_ten_minutes = base * 600 - 9 * drop;
            let tens = label / per_ten_minutes;
            let within = label % per_ten_minutes;
            // The first minute of each ten has all its labels. Every later minute
            // skips `drop` labels.
            let dropped_minutes = if within < base * 60 {
                0
            } else {
                (within - drop) / per_minute
            };
            label += drop * (9 * tens + dropped_minutes);
        }
        let frames = label % base;
        let total_seconds = label / base;
        let seconds = total_seconds % 60;
        let minutes = (total_seconds / 60) % 60;
        let hours = total_seconds / 3600;
        Timecode {
            hours: u32::try_from(hours).unwrap_or(u32::MAX),
            // These are all below 60, so they always fit in a u32.
            minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            seconds: u32::try_from(seconds).unwrap_or(u32::MAX),
            frames: u32::try_from(frames).unwrap_or(u32::MAX),
            drop_frame: rate.is_drop_frame(),
        }
    }

    /// Checks that this label exists at `rate`: fields in range, and not a label
    /// that drop-frame skips.
    fn validate(&self, rate: FrameRate) -> Result<(), TimecodeError> {
        let base = rate.timecode_base();
        for (field, value, limit) in [
            ("minutes", self.minutes, 60),
            ("seconds", self.seconds, 60),
            ("frames", self.frames, base),
        ] {
            if value >= limit {
                return Err(TimecodeError::FieldOutOfRange {
                    timecode: self.to_string(),
                    field,
                    value,
                    max: limit - 1,
                    rate,
                });
            }
        }
        let drop = rate.dropped_labels();
        if drop > 0 && self.seconds == 0 && self.frames < drop && is_dropped_minute(self.minutes) {
            return Err(TimecodeError::DroppedLabel {
                timecode: self.to_string(),
                rate,
                last_dropped: drop - 1,
            });
        }
        Ok(())
    }

    /// The frame number that this label names at `rate`. Returns an error if a field
    /// is out of range (frames >= the timecode base, seconds or minutes > 59), or if
    /// the label is skipped by drop-frame (such as `00:01:00;00` at 29.97 DF).
    pub fn to_frames(&self, rate: FrameRate) -> Result<u64, TimecodeError> {
        self.validate(rate)?;
        let base = u64::from(rate.timecode_base());
        let drop = u64::from(rate.dropped_labels());
        // Cannot overflow: u32::MAX hours * 216_000 < 2^50.
        let total_minutes = u64::from(self.hours) * 60 + u64::from(self.minutes);
        let total_seconds = total_minutes * 60 + u64::from(self.seconds);
        let nominal = total_seconds * base + u64::from(self.frames);
        Ok(nominal - drop * (total_minutes - total_minutes / 10))
    }

    /// Parses `"HH:MM:SS:FF"` (or `;` before the frames) and checks that the label
    /// exists at `rate`. Hours may have more than two digits. The result's
    /// `drop_frame` flag follows `rate`, whichever separator the text used.
    pub fn parse(text: &str, rate: FrameRate) -> Result<Timecode, TimecodeError> {
        let malformed = || TimecodeError::Malformed {
            value: text.trim().to_owned(),
        };
        let trimmed = text.trim();
        let (clock, frames) = trimmed.rsplit_once([':', ';']).ok_or_else(malformed)?;
        let mut parts = clock.split(':');
        let (Some(hours), Some(minutes), Some(seconds), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let field = |digits: &str, max_len: usize| -> Result<u32, TimecodeError> {
            if digits.is_empty()
                || digits.len() > max_len
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(malformed());
            }
            digits.parse().map_err(|_| malformed())
        };
        let timecode = Timecode {
            hours: field(hours, 10)?,
            minutes: field(minutes, 2)?,
            seconds: field(seconds, 2)?,
            frames: field(frames, 2)?,
            drop_frame: rate.is_drop_frame(),
        };
        timecode.validate(rate)?;
        Ok(timecode)
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if self.drop_frame { ';' } else { ':' };
        write!(
            f,
            "{:02}:{:02}:{:02}{}{:02}",
            self.hours, self.minutes, self.seconds, separator, self.frames
        )
    }
}

/// Errors from frame-rate parsing and timecode conversion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimecodeError {
    /// The text does not name a supported frame rate.
    #[error(
        "'{value}' is not a supported frame rate (use one of 23.976, 24, 25, 29.97df, 30, 50, 59.94df, 60)"
    )]
    UnsupportedFrameRate {
        /// The text that was given.
        value: String,
    },
    /// The text is not shaped like `HH:MM:SS:FF`.
    #[error("'{value}' is not a timecode (expected HH:MM:SS:FF or HH:MM:SS;FF)")]
    Malformed {
        /// The text that was given.
        value: String,
    },
    /// A minutes, seconds or frames field is too large for the rate.
    #[error(
        "'{timecode}' is not a valid timecode at {rate}: {field} is {value}, the most is {max}"
    )]
    FieldOutOfRange {
        /// The offending timecode, as displayed.
        timecode: String,
        /// Which field: `"minutes"`, `"seconds"` or `"frames"`.
        field: &'static str,
        /// The value found.
        value: u32,
        /// The largest allowed value.
        max: u32,
        /// The rate it was checked against.
        rate: FrameRate,
    },
    /// The label is one that drop-frame timecode skips.
    #[error(
        "'{timecode}' does not exist at {rate}: drop-frame skips frame labels 00 to {last_dropped:02} at the start of every minute not divisible by 10"
    )]
    DroppedLabel {
        /// The offending timecode, as displayed.
        timecode: String,
        /// The rate it was checked against.
        rate: FrameRate,
        /// The highest frame label skipped (1 at 29.97 DF, 3 at 59.94 DF).
        last_dropped: u32,
    },
    /// The seconds value is NaN, infinite or negative.
    #[error("'{value}' is not a valid number of seconds (must be finite and not negative)")]
    InvalidSeconds {
        /// The value that was given.
        value: f64,
    },
    /// The seconds value is too large to count in `u64` frames.
    #[error("'{value}' seconds is too long to count in frames at {rate}")]
    SecondsOutOfRange {
        /// The value that was given.
        value: f64,
        /// The rate it was converted at.
        rate: FrameRate,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn tc(frame: u64, rate: FrameRate) -> String {
        Timecode::from_frames(frame, rate).to_string()
    }

    fn frames_of(text: &str, rate: FrameRate) -> Result<u64, TimecodeError> {
        Timecode::parse(text, rate)?.to_frames(rate)
    }

    #[test]
    fn known_values_29_97_df() {
        let r = FrameRate::Fps29_97Df;
        let cases: &[(u64, &str)] = &[
            (0, "00:00:00;00"),
            (1, "00:00:00;01"),
            (2, "00:00:00;02"),
            (29, "00:00:00;29"),
            (30, "00:00:01;00"),
            (1799, "00:00:59;29"),
            (1800, "00:01:00;02"),
            (1801, "00:01:00;03"),
            (1827, "00:01:00;29"),
            (1828, "00:01:01;00"),
            (3597, "00:01:59;29"),
            (3598, "00:02:00;02"),
            (17981, "00:09:59;29"),
            (17982, "00:10:00;00"),
            (17983, "00:10:00;01"),
            (17982 + 1799, "00:10:59;29"),
            (17982 + 1800, "00:11:00;02"),
            (107_891, "00:59:59;29"),
            (107_892, "01:00:00;00"),
            (107_892 + 1800, "01:01:00;02"),
            (107_892 * 24, "24:00:00;00"),
            (107_892 * 100 + 17982, "100:10:00;00"),
        ];
        for &(frame, expected) in cases {
            assert_eq!(tc(frame, r), expected, "frame {frame}");
            assert_eq!(frames_of(expected, r).unwrap(), frame, "{expected}");
        }
    }

    #[test]
    fn known_values_59_94_df() {
        let r = FrameRate::Fps59_94Df;
        let cases: &[(u64, &str)] = &[
            (0, "00:00:00;00"),
            (3, "00:00:00;03"),
            (4, "00:00:00;04"),
            (3596, "00:00:59;56"),
            (3599, "00:00:59;59"),
            (3600, "00:01:00;04"),
            (3600 + 3595, "00:01:59;59"),
            (3600 + 3596, "00:02:00;04"),
            (35_963, "00:09:59;59"),
            (35_964, "00:10:00;00"),
            (215_783, "00:59:59;59"),
            (215_784, "01:00:00;00"),
            (215_784 * 24, "24:00:00;00"),
        ];
        for &(frame, expected) in cases {
            assert_eq!(tc(frame, r), expected, "frame {frame}");
            assert_eq!(frames_of(expected, r).unwrap(), frame, "{expected}");
        }
    }

    #[test]
    fn known_values_non_drop() {
        assert_eq!(tc(86_400, FrameRate::Fps24), "01:00:00:00");
        assert_eq!(tc(86_400, FrameRate::Fps23_976), "01:00:00:00");
        assert_eq!(tc(86_399, FrameRate::Fps23_976), "00:59:59:23");
        assert_eq!(tc(90_000, FrameRate::Fps25), "01:00:00:00");
        assert_eq!(tc(108_000, FrameRate::Fps30), "01:00:00:00");
        assert_eq!(tc(1800, FrameRate::Fps30), "00:01:00:00");
        assert_eq!(tc(180_000, FrameRate::Fps50), "01:00:00:00");
        assert_eq!(tc(216_000, FrameRate::Fps60), "01:00:00:00");
        assert_eq!(tc(86_400 * 25, FrameRate::Fps24), "25:00:00:00");
        assert_eq!(frames_of("01:00:00:00", FrameRate::Fps24).unwrap(), 86_400);
        assert_eq!(frames_of("00:00:01:05", FrameRate::Fps25).unwrap(), 30);
    }

    #[test]
    fn seconds_and_frames() {
        assert_eq!(
            FrameRate::Fps23_976.frames_to_seconds(86_400),
            3603.6,
            "23.976 runs 0.1% slow"
        );
        assert_eq!(FrameRate::Fps24.frames_to_seconds(86_400), 3600.0);
        assert_eq!(FrameRate::Fps29_97Df.frames_to_seconds(30_000), 1001.0);
        assert!((FrameRate::Fps29_97Df.frames_to_seconds(107_892) - 3599.9964).abs() < 1e-9);
        assert_eq!(FrameRate::Fps25.frames_to_seconds(0), 0.0);

        assert_eq!(FrameRate::Fps29_97Df.seconds_to_frames(1.0).unwrap(), 30);
        assert_eq!(FrameRate::Fps23_976.seconds_to_frames(10.0).unwrap(), 240);
        assert_eq!(FrameRate::Fps25.seconds_to_frames(2.0).unwrap(), 50);
        assert_eq!(FrameRate::Fps24.seconds_to_frames(0.0).unwrap(), 0);
        assert_eq!(FrameRate::Fps24.seconds_to_frames(-0.0).unwrap(), 0);
        assert_eq!(FrameRate::Fps24.seconds_to_frames(0.02).unwrap(), 0);
        assert_eq!(FrameRate::Fps24.seconds_to_frames(0.03).unwrap(), 1);
        assert_eq!(
            FrameRate::Fps23_976.seconds_to_frames(3603.6).unwrap(),
            86_400
        );

        for bad in [f64::NAN, -1.0, -1e-9, f64::INFINITY, f64::NEG_INFINITY] {
            let err = FrameRate::Fps24.seconds_to_frames(bad).unwrap_err();
            assert!(matches!(err, TimecodeError::InvalidSeconds { .. }), "{bad}");
        }
        let err = FrameRate::Fps60.seconds_to_frames(1e300).unwrap_err();
        assert!(matches!(err, TimecodeError::SecondsOutOfRange { .. }));
        assert!(err.to_string().contains("60"), "{err}");
        let err = FrameRate::Fps24.seconds_to_frames(-2.5).unwrap_err();
        assert!(err.to_string().contains("'-2.5'"), "{err}");
    }

    #[test]
    fn invalid_labels_rejected() {
        let df = FrameRate::Fps29_97Df;
        for label in ["00:01:00;00", "00:01:00;01", "01:59:00;01", "00:01:00:00"] {
            let err = Timecode::parse(label, df).unwrap_err();
            assert!(
                matches!(err, TimecodeError::DroppedLabel { .. }),
                "{label}: {err:?}"
            );
            assert!(err.to_string().contains("does not exist"), "{err}");
        }
        // The same labels exist on tenth minutes and at non-drop rates.
        assert_eq!(frames_of("00:10:00;00", df).unwrap(), 17_982);
        assert_eq!(frames_of("00:01:00:00", FrameRate::Fps30).unwrap(), 1800);
        for label in ["00:01:00;03", "00:02:00;00"] {
            let err = Timecode::parse(label, FrameRate::Fps59_94Df).unwrap_err();
            assert!(
                matches!(err, TimecodeError::DroppedLabel { .. }),
                "{label}: {err:?}"
            );
        }

        let err = Timecode::parse("00:00:00:24", FrameRate::Fps24).unwrap_err();
        assert!(
            matches!(
                err,
                TimecodeError::FieldOutOfRange {
                    field: "frames",
                    value: 24,
                    max: 23,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("00:00:00:24"), "{err}");
        assert!(Timecode::parse("00:00:00:24", FrameRate::Fps25).is_ok());
        assert!(Timecode::parse("00:00:00;30", df).is_err());
        assert!(Timecode::parse("00:60:00:00", FrameRate::Fps24).is_err());
        assert!(Timecode::parse("00:00:60:00", FrameRate::Fps24).is_err());

        // to_frames checks hand-built values, too.
        let built = Timecode {
            hours: 0,
            minutes: 1,
            seconds: 0,
            frames: 0,
            drop_frame: true,
        };
        assert!(built.to_frames(df).is_err());
        assert_eq!(built.to_frames(FrameRate::Fps30).unwrap(), 1800);
        let built = Timecode {
            minutes: 60,
            ..built
        };
        assert!(built.to_frames(FrameRate::Fps30).is_err());

        for garbage in [
            "",
            "   ",
            "hello",
            "01:00:00",
            "01:00:00:00:00",
            "1:2:3",
            "aa:bb:cc:dd",
            "-01:00:00:00",
            "01:00:00:+1",
            "01:000:00:00",
            "01;00;00;00",
            "01:00:00::00",
            "99999999999:00:00:00",
            "01:00:00:1x",
        ] {
            let err = Timecode::parse(garbage, FrameRate::Fps24).unwrap_err();
            assert!(
                matches!(err, TimecodeError::Malformed { .. }),
                "{garbage:?}: {err:?}"
            );
        }
        let err = Timecode::parse("hello", FrameRate::Fps24).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'hello' is not a timecode (expected HH:MM:SS:FF or HH:MM:SS;FF)"
        );
    }

    #[test]
    fn parse_accepts_either_separator_and_display_follows_rate() {
        let df = FrameRate::Fps29_97Df;
        let a = Timecode::parse("01:00:00;00", df).unwrap();
        let b = Timecode::parse(" 01:00:00:00 ", df).unwrap();
        assert_eq!(a, b);
        assert!(a.drop_frame);
        assert_eq!(a.to_string(), "01:00:00;00");
        let n = Timecode::parse("01:00:00;00", FrameRate::Fps24).unwrap();
        assert!(!n.drop_frame);
        assert_eq!(n.to_string(), "01:00:00:00");
        assert_eq!(
            Timecode::parse("1:2:3:4", FrameRate::Fps24)
                .unwrap()
                .to_string(),
            "01:02:03:04"
        );
        assert_eq!(
            Timecode::parse("123:00:00:00", FrameRate::Fps24)
                .unwrap()
                .to_frames(FrameRate::Fps24)
                .unwrap(),
            123 * 86_400
        );
    }

    /// Independent oracle: walk labels one at a time, skipping dropped ones, and
    /// compare with the closed-form conversion for the first hours of every rate.
    #[test]
    fn exhaustive_against_label_walk() {
        for rate in FrameRate::ALL {
            let base = rate.timecode_base();
            let drop = rate.dropped_labels();
            let mut label = Timecode {
                hours: 0,
                minutes: 0,
                seconds: 0,
                frames: 0,
                drop_frame: rate.is_drop_frame(),
            };
            let frames_in_two_hours = 2 * rate.seconds_to_frames(3600.0).unwrap() + 100;
            for frame in 0..frames_in_two_hours {
                assert_eq!(
                    Timecode::from_frames(frame, rate),
                    label,
                    "{rate} frame {frame}"
                );
                assert_eq!(label.to_frames(rate).unwrap(), frame, "{rate} {label}");
                label.frames += 1;
                if label.frames == base {
                    label.frames = 0;
                    label.seconds += 1;
                    if label.seconds == 60 {
                        label.seconds = 0;
                        label.minutes += 1;
                        if label.minutes == 60 {
                            label.minutes = 0;
                            label.hours += 1;
                        }
                        if is_dropped_minute(label.minutes) {
                            label.frames = drop;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn one_hour_of_frames_per_rate() {
        let expected: [(FrameRate, u64); 8] = [
            (FrameRate::Fps23_976, 86_400),
            (FrameRate::Fps24, 86_400),
            (FrameRate::Fps25, 90_000),
            (FrameRate::Fps29_97Df, 107_892),
            (FrameRate::Fps30, 108_000),
            (FrameRate::Fps50, 180_000),
            (FrameRate::Fps59_94Df, 215_784),
            (FrameRate::Fps60, 216_000),
        ];
        for (rate, frames) in expected {
            assert_eq!(frames_of("01:00:00:00", rate).unwrap(), frames, "{rate}");
        }
    }

    #[test]
    fn rate_metadata() {
        assert_eq!(FrameRate::ALL.len(), 8);
        let names: Vec<&str> = FrameRate::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["23.976", "24", "25", "29.97df", "30", "50", "59.94df", "60"]
        );
        // The error message lists exactly the supported rates.
        let err = "29.5".parse::<FrameRate>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "'29.5' is not a supported frame rate (use one of {})",
                names.join(", ")
            )
        );
        let bases: Vec<u32> = FrameRate::ALL.iter().map(|r| r.timecode_base()).collect();
        assert_eq!(bases, [24, 24, 25, 30, 30, 50, 60, 60]);
        assert_eq!(FrameRate::Fps23_976.rational(), (24_000, 1001));
        assert_eq!(FrameRate::Fps29_97Df.rational(), (30_000, 1001));
        assert_eq!(FrameRate::Fps59_94Df.rational(), (60_000, 1001));
        assert_eq!(FrameRate::Fps50.rational(), (50, 1));
        assert_eq!(FrameRate::Fps29_97Df.label(), "29.97 fps drop-frame");
        assert_eq!(FrameRate::Fps23_976.label(), "23.976 fps");
        for rate in FrameRate::ALL {
            assert_eq!(rate.is_drop_frame(), rate.as_str().ends_with("df"));
            assert_eq!(rate.to_string(), rate.as_str());
            assert_eq!(rate.as_str().parse::<FrameRate>().unwrap(), rate);
            assert_eq!(rate.label().parse::<FrameRate>().unwrap(), rate);
            let (num, den) = rate.rational();
            assert_eq!(format!("{num}/{den}").parse::<FrameRate>().unwrap(), rate);
        }
    }

    #[test]
    fn from_str_is_lenient() {
        let cases: &[(&str, FrameRate)] = &[
            ("24", FrameRate::Fps24),
            ("24.0", FrameRate::Fps24),
            ("24.000", FrameRate::Fps24),
            ("24 fps", FrameRate::Fps24),
            ("24fps", FrameRate::Fps24),
            ("24 NDF", FrameRate::Fps24),
            ("23.976", FrameRate::Fps23_976),
            ("23.98", FrameRate::Fps23_976),
            ("23.97", FrameRate::Fps23_976),
            ("23.976 fps", FrameRate::Fps23_976),
            ("23.98 ndf", FrameRate::Fps23_976),
            ("24000/1001", FrameRate::Fps23_976),
            (" 25 fps ", FrameRate::Fps25),
            ("25", FrameRate::Fps25),
            ("29.97", FrameRate::Fps29_97Df),
            ("29.97df", FrameRate::Fps29_97Df),
            ("29.97 DF", FrameRate::Fps29_97Df),
            ("29.97 fps DF", FrameRate::Fps29_97Df),
            ("29.97 drop-frame", FrameRate::Fps29_97Df),
            ("29.97 Drop Frame", FrameRate::Fps29_97Df),
            ("30000/1001", FrameRate::Fps29_97Df),
            ("30", FrameRate::Fps30),
            ("30.0 fps", FrameRate::Fps30),
            ("50", FrameRate::Fps50),
            ("59.94", FrameRate::Fps59_94Df),
            ("59.94df", FrameRate::Fps59_94Df),
            ("59.94 DF", FrameRate::Fps59_94Df),
            ("60000/1001 df", FrameRate::Fps59_94Df),
            ("60", FrameRate::Fps60),
            ("60/1", FrameRate::Fps60),
            ("120/2", FrameRate::Fps60),
        ];
        for &(text, expected) in cases {
            assert_eq!(text.parse::<FrameRate>(), Ok(expected), "{text:?}");
        }
        for bad in [
            "",
            "29.5",
            "29.98",
            "23.99",
            "24.1",
            "48",
            "120",
            "29.97 ndf",
            "29.97 NDF",
            "24 df",
            "30df",
            "fps",
            "df",
            "nan",
            "inf",
            "24/0",
            "1/0",
            "abc",
            "24 frames",
        ] {
            let err = bad.parse::<FrameRate>().unwrap_err();
            assert!(
                matches!(err, TimecodeError::UnsupportedFrameRate { .. }),
                "{bad:?}"
            );
            assert!(
                err.to_string().starts_with(&format!("'{}' ", bad.trim())),
                "{err}"
            );
        }
    }

    #[test]
    fn serde_round_trip() {
        for rate in FrameRate::ALL {
            let json = serde_json::to_string(&rate).unwrap();
            assert_eq!(json, format!("\"{}\"", rate.as_str()));
            let back: FrameRate = serde_json::from_str(&json).unwrap();
            assert_eq!(back, rate);
        }
        assert_eq!(
            serde_json::to_string(&FrameRate::Fps29_97Df).unwrap(),
            "\"29.97df\""
        );
        let lenient: FrameRate = serde_json::from_str("\"29.97 DF\"").unwrap();
        assert_eq!(lenient, FrameRate::Fps29_97Df);
        let err = serde_json::from_str::<FrameRate>("\"29.5\"").unwrap_err();
        assert!(err.to_string().contains("'29.5'"), "{err}");
        assert!(serde_json::from_str::<FrameRate>("24").is_err());
        let list: Vec<FrameRate> = serde_json::from_str("[\"24\",\"59.94df\"]").unwrap();
        assert_eq!(list, [FrameRate::Fps24, FrameRate::Fps59_94Df]);
    }

    fn any_rate() -> impl Strategy<Value = FrameRate> {
        prop::sample::select(FrameRate::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn text_round_trip(rate in any_rate(), frame in 0u64..10_000_000) {
            let text = Timecode::from_frames(frame, rate).to_string();
            let parsed = Timecode::parse(&text, rate).unwrap();
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed.to_frames(rate).unwrap(), frame);
        }

        #[test]
        fn strictly_increasing(rate in any_rate(), frame in 0u64..10_000_000) {
            let a = Timecode::from_frames(frame, rate);
            let b = Timecode::from_frames(frame + 1, rate);
            prop_assert!(
                (a.hours, a.minutes, a.seconds, a.frames) < (b.hours, b.minutes, b.seconds, b.frames),
                "{} then {}", a, b
            );
        }

        #[test]
        fn seconds_round_trip(rate in any_rate(), frame in 0u64..1_000_000_000_000) {
            let seconds = rate.frames_to_seconds(frame);
            prop_assert_eq!(rate.seconds_to_frames(seconds).unwrap(), frame);
        }

        #[test]
        fn any_valid_label_round_trips(
            rate in any_rate(),
            hours in 0u32..200,
            minutes in 0u32..60,
            seconds in 0u32..60,
            frames in 0u32..60,
        ) {
            let label = Timecode { hours, minutes, seconds, frames, drop_frame: rate.is_drop_frame() };
            match label.to_frames(rate) {
                Ok(frame) => prop_assert_eq!(Timecode::from_frames(frame, rate), label),
                Err(_) => prop_assert!(
                    frames >= rate.timecode_base()
                        || (seconds == 0 && frames < rate.dropped_labels() && is_dropped_minute(minutes))
                ),
            }
        }
    }
}
