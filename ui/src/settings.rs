//! What the editor remembers between runs on this machine: which columns of the shot
//! table are shown and how wide they are. A JSON file in the data dir
//! (`editor.json`), read once at start and written on a thread of its own (the UI
//! never waits on the disk), through a temporary file and a rename so a crash
//! leaves the old file or the new one, never half of one. A file that cannot be
//! read is reported and the defaults are used: layout is never worth refusing to
//! open the window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

/// The remembered layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Shot table columns shown, by key (`scene`, `camera_body`, ...), in no order;
    /// `None`: the defaults.
    pub columns: Option<Vec<String>>,
    /// Column widths in points, by key.
    pub widths: BTreeMap<String, f32>,
}

/// Why the settings file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason} (using the default layout)")]
pub struct SettingsError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong.
    pub reason: String,
}

impl Settings {
    /// The settings in `path`; the defaults when there is no file yet.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not valid settings JSON.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => {
                return Err(SettingsError {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let mut settings: Settings = serde_json::from_slice(&bytes).map_err(|e| SettingsError {
            path: path.to_owned(),
            reason: format!("not editor settings: {e}"),
        })?;
        settings
            .widths
            .retain(|_, w| w.is_finite() && (16.0..=4000.0).contains(w));
        Ok(settings)
    }
}

/// Writes settings to one file on a thread of its own; the latest wins.
#[derive(Debug)]
pub struct Saver {
    path: PathBuf,
    to_thread: mpsc::Sender<Settings>,
    last: Settings,
}

impl Saver {
    /// A saver for `path`, knowing `current` is what the file already holds.
    #[must_use]
    pub fn new(path: PathBuf, current: Settings) -> Saver {
        let (to_thread, from_ui) = mpsc::channel::<Settings>();
        let target = path.clone();
        let spawned = std::thread::Builder::new()
            .name("reelmesh-settings".into())
            .spawn(move || {
                while let Ok(mut settings) = from_ui.recv() {
                    // Only the newest of a burst is written.
                    while let Ok(newer) = from_ui.try_recv() {
                        settings = newer;
                    }
                    if let Err(e) = write(&target, &settings) {
                        tracing::warn!(
                            "could not save the editor layout to {}: {e}",
                            target.display()
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no thread to save the editor layout: {e}");
        }
        Saver {
            path,
            to_thread,
            last: current,
        }
    }

    /// Where it writes.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Save `settings` if they differ from the last saved.
    pub fn offer(&mut self, settings: &Settings) {
        if *settings != self.last {
            self.last = settings.clone();
            let _ = self.to_thread.send(settings.clone());
        }
    }
}

fn write(path: &Path, settings: &Settings) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, json)?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_settings_read_back_and_a_broken_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("editor.json");
        assert_eq!(Settings::load(&path).expect("no file"), Settings::default());
        let settings = Settings {
            columns: Some(vec!["scene".into(), "camera_body".into()]),
            widths: BTreeMap::from([("scene".to_owned(), 312.0)]),
        };
        write(&path, &settings).expect("write");
        assert_eq!(Settings::load(&path).expect("read"), settings);

        std::fs::write(&path, b"{\"columns\": 3").expect("break it");
        let error = Settings::load(&path).expect_err("broken");
        assert!(error.to_string().contains("editor.json"), "{error}");

        // Widths no window could have are dropped, not trusted.
        std::fs::write(&path, br#"{"widths": {"scene": -5, "action": 200}}"#).expect("odd");
        let read = Settings::load(&path).expect("read");
        assert_eq!(read.widths, BTreeMap::from([("action".to_owned(), 200.0)]));
    }
}
