//! Undo and redo: one pair of stacks per project and client (`cli`, `editor`).
//!
//! An edit ([`edit::apply`]) answers with the edits that undo it; they go on the
//! client's undo stack. Undoing applies them, which answers with their own undo,
//! the redo; redoing does the same the other way. Every step is a new change of the
//! document, so it merges with what other clients and nodes did meanwhile (see
//! `protocol/src/api/edit.rs`). A new edit clears the redo stack, as editors do.
//!
//! The stacks live on the node (one owner, behind a lock) and on disk, at
//! `<data dir>/projects/<id>/undo/<client>.json` (written whole to a temporary file
//! and renamed over the old one), so `reelmesh undo` undoes the last `reelmesh shot
//! set` whether or not a node ran in between. At most [`MAX_ENTRIES`] per stack.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reelmesh_protocol::api::edit::{self, Edit};
use reelmesh_protocol::api::{ApiError, Reply};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::node::{NodeHandle, ProjectError};

/// Most entries kept on one stack (the oldest go first).
pub const MAX_ENTRIES: usize = 200;

/// One step that can be undone (or redone): what it did and the edits that revert it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    summary: String,
    edits: Vec<Edit>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Pair {
    undo: Vec<Entry>,
    redo: Vec<Entry>,
}

/// Every client's stacks of every project of a data dir.
#[derive(Debug)]
pub struct Stacks {
    root: PathBuf,
    pairs: HashMap<(String, String), Pair>,
}

impl Stacks {
    /// Stacks of the data dir at `root` (read from disk when first needed).
    #[must_use]
    pub fn new(root: &Path) -> Stacks {
        Stacks {
            root: root.to_owned(),
            pairs: HashMap::new(),
        }
    }

    fn path(&self, project_id: &str, client: &str) -> PathBuf {
        self.root
            .join("projects")
            .join(project_id)
            .join("undo")
            .join(format!("{client}.json"))
    }

    fn pair(&mut self, project_id: &str, client: &str) -> &mut Pair {
        let path = self.path(project_id, client);
        self.pairs
            .entry((project_id.to_owned(), client.to_owned()))
            .or_insert_with(|| match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    warn!("{}: not undo stacks ({e}); starting empty", path.display());
                    Pair::default()
                }),
                Err(_) => Pair::default(),
            })
    }

    fn save(&mut self, project_id: &str, client: &str) {
        let path = self.path(project_id, client);
        let pair = self.pair(project_id, client);
        for stack in [&mut pair.undo, &mut pair.redo] {
            let excess = stack.len().saturating_sub(MAX_ENTRIES);
            stack.drain(..excess);
        }
        let written = serde_json::to_vec(&*pair)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let temp = path.with_extension("json.tmp");
                std::fs::write(&temp, bytes)?;
                std::fs::rename(&temp, &path)
            });
        if let Err(e) = written {
            // The edit itself is saved; only its undo is lost after a restart.
            warn!("{}: saving the undo stacks failed: {e}", path.display());
        }
    }
}

/// A client name is a file name: letters, digits, `-` and `_`.
fn check_client(client: &str) -> Result<(), ApiError> {
    let fine = !client.is_empty()
        && client.len() <= 32
        && client
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            message: format!("'{client}' is not a client name (letters, digits, - and _)"),
        })
    }
}

/// Apply an edit and put its undo on the client's stack.
pub(super) async fn edit(
    handle: &NodeHandle,
    project: Option<String>,
    client: &str,
    edit: Edit,
) -> Result<Reply, ApiError> {
    check_client(client)?;
    // A refused edit writes nothing: its typed error comes back as the value.
    let (project_id, applied) = handle
        .edit(project, move |doc| Ok(edit::apply(doc, &edit)))
        .await?;
    let applied = applied?;
    let mut stacks = handle.undo_stacks().lock().await;
    let pair = stacks.pair(&project_id, client);
    if !applied.undo.is_empty() {
        pair.undo.push(Entry {
            summary: applied.summary.clone(),
            edits: applied.undo,
        });
        pair.redo.clear();
    }
    stacks.save(&project_id, client);
    Ok(Reply::Edited {
        project_id,
        summary: applied.summary,
        record_id: applied.record_id,
    })
}

/// Undo the client's latest edit (`redo`: redo what it undid last).
pub(super) async fn undo(
    handle: &NodeHandle,
    project: Option<String>,
    client: &str,
    redo: bool,
) -> Result<Reply, ApiError> {
    check_client(client)?;
    let (project_id, ()) = handle.read(project, |_| ()).await?;
    let entry = {
        let mut stacks = handle.undo_stacks().lock().await;
        let pair = stacks.pair(&project_id, client);
        if redo {
            pair.redo.pop()
        } else {
            pair.undo.pop()
        }
    };
    let Some(entry) = entry else {
        return Ok(Reply::Undone {
            project_id,
            summary: None,
            left: 0,
        });
    };
    let edits = entry.edits.clone();
    // All of it or nothing: a step that fails makes the runtime reload the saved
    // project, undoing the steps before it.
    let done = handle
        .edit(Some(project_id.clone()), move |doc| {
            let mut back = Vec::new();
            for step in &edits {
                let applied = edit::apply(doc, step).map_err(|e| e.to_string())?;
                back.splice(0..0, applied.undo);
            }
            Ok(back)
        })
        .await;
    let mut stacks = handle.undo_stacks().lock().await;
    let pair = stacks.pair(&project_id, client);
    let back = match done {
        Ok((_, back)) => back,
        Err(e) => {
            // Put it back: nothing changed.
            if redo {
                pair.redo.push(entry);
            } else {
                pair.undo.push(entry);
            }
            let message = match e {
                crate::node::NodeError::Project(ProjectError::Refused(why)) => why,
                other => return Err(other.into()),
            };
            return Err(ApiError::Invalid {
                message: format!(
                    "cannot {} \"{}\": {message}",
                    if redo { "redo" } else { "undo" },
                    entry_summary(pair, redo)
                ),
            });
        }
    };
    let (to, verb) = if redo {
        (&mut pair.undo, "redid")
    } else {
        (&mut pair.redo, "undid")
    };
    to.push(Entry {
        summary: entry.summary.clone(),
        edits: back,
    });
    let left = if redo {
        pair.redo.len()
    } else {
        pair.undo.len()
    };
    stacks.save(&project_id, client);
    Ok(Reply::Undone {
        project_id,
        summary: Some(format!("{verb}: {}", entry.summary)),
        left,
    })
}

/// The summary of the entry just put back on the stack.
fn entry_summary(pair: &Pair, redo: bool) -> String {
    let stack = if redo { &pair.redo } else { &pair.undo };
    stack.last().map(|e| e.summary.clone()).unwrap_or_default()
}
