//! `reelmesh shot|character|look|template|review|take|catalog|undo|redo`: every
//! editing action of the editor, from the command line (for scripts and pipelines).
//!
//! Each becomes one [`Edit`] sent to the node ([`crate::api`]): the running one, or
//! one started for the command. Fields are `FIELD=VALUE` pairs (`action=비가 온다`,
//! `seconds=2.5`, `characters=민지, 준`); a bad value is refused with the record, the
//! field and why, and nothing is written. `reelmesh undo` undoes the last edit made
//! from the command line in this data dir (`redo` does it again).

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;
use reelmesh_protocol::api::edit::{Edit, Place, SHOT_FIELDS, Verdict, parse_assignments};

use crate::api::{Reply, Request};

/// Whose undo stack the command line's edits go on.
pub const CLIENT: &str = "cli";

/// `reelmesh shot ...`
#[derive(Debug, Subcommand)]
pub enum ShotCmd {
    /// Add a shot (at the end, or after another): `reelmesh shot add --after
    /// SHT-00003 action='민지가 달린다' seconds=3`.
    Add {
        /// The shot it goes after (default: the end).
        #[arg(long)]
        after: Option<String>,
        /// FIELD=VALUE pairs.
        #[arg(value_name = "FIELD=VALUE")]
        values: Vec<String>,
    },
    /// Set fields of a shot: `reelmesh shot set SHT-00003 action='...' look=Noir`.
    #[command(after_help = format!("Fields: {SHOT_FIELDS}"))]
    Set {
        /// The shot: SHT-00003, 3, or its id.
        shot: String,
        /// FIELD=VALUE pairs.
        #[arg(value_name = "FIELD=VALUE", required = true)]
        values: Vec<String>,
    },
    /// Move a shot to the trash (its code stays taken; `shot restore` brings it back).
    Delete {
        /// The shot.
        shot: String,
    },
    /// Bring a shot back from the trash.
    Restore {
        /// The shot (its code or id).
        shot: String,
    },
    /// Move a shot in the timeline.
    Move {
        /// The shot.
        shot: String,
        /// Right before this shot.
        #[arg(long, group = "place")]
        before: Option<String>,
        /// Right after this shot.
        #[arg(long, group = "place")]
        after: Option<String>,
        /// First.
        #[arg(long, group = "place")]
        start: bool,
        /// Last.
        #[arg(long, group = "place")]
        end: bool,
    },
    /// Copy a shot right after it, with the next code (no takes, pending).
    Duplicate {
        /// The shot.
        shot: String,
    },
}

/// `reelmesh character ...` and `reelmesh look ...`
#[derive(Debug, Subcommand)]
pub enum RecordCmd {
    /// Add one: `reelmesh character add 민지 appearance='짧은 머리' lora=minji_v2.safetensors`.
    Add {
        /// Its name.
        name: String,
        /// FIELD=VALUE pairs.
        #[arg(value_name = "FIELD=VALUE")]
        values: Vec<String>,
    },
    /// Set fields: `reelmesh look set Noir aspect_ratio=2.39:1`.
    Set {
        /// Its name or id.
        name: String,
        /// FIELD=VALUE pairs.
        #[arg(value_name = "FIELD=VALUE", required = true)]
        values: Vec<String>,
    },
    /// Move it to the trash (`undo` brings it back).
    Delete {
        /// Its name or id.
        name: String,
    },
}

/// `reelmesh template ...`
#[derive(Debug, Subcommand)]
pub enum TemplateCmd {
    /// Set the project's prompt template (`{style} image of {subject}, {action}, ...`).
    Set {
        /// The template.
        template: String,
    },
}

/// `reelmesh review SHOT ...`
#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Sign the shot off.
    Approve,
    /// Ask for another take, saying what to change.
    Revise {
        /// What to change.
        #[arg(long)]
        note: String,
    },
    /// Render a new take now (the shot's last render again, with a fresh seed; the
    /// old takes stay as history).
    Regenerate,
}

/// `reelmesh take ...`
#[derive(Debug, Subcommand)]
pub enum TakeCmd {
    /// Choose the take a shot shows on the storyboard (`latest` for the newest).
    Select {
        /// The shot.
        shot: String,
        /// A take id or unique prefix (`reelmesh takes` lists them), or `latest`.
        take: String,
    },
}

/// `reelmesh catalog ...`
#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Add a value to a dropdown catalog of this project (`camera_body`, `lens_type`,
    /// `film_stock`, `style`, `look_and_feel`, `lighting_source`, `lighting_style`,
    /// `environment`, `atmosphere`, `lens_filter`, `aspect_ratio`, `focal_length`).
    Add {
        /// The catalog.
        name: String,
        /// The value.
        value: String,
    },
    /// Take a value this project added back out.
    Remove {
        /// The catalog.
        name: String,
        /// The value.
        value: String,
    },
}

fn values(args: &[String]) -> Result<Vec<(String, String)>> {
    parse_assignments(args).map_err(anyhow::Error::msg)
}

/// The edit a `shot` command asks for.
pub fn shot_edit(command: ShotCmd) -> Result<Edit> {
    Ok(match command {
        ShotCmd::Add { after, values: v } => Edit::ShotAdd {
            after,
            values: values(&v)?,
        },
        ShotCmd::Set { shot, values: v } => Edit::ShotSet {
            shot,
            values: values(&v)?,
        },
        ShotCmd::Delete { shot } => Edit::ShotDelete { shot },
        ShotCmd::Restore { shot } => Edit::ShotRestore { shot },
        ShotCmd::Move {
            shot,
            before,
            after,
            start,
            end,
        } => {
            let to = match (before, after, start, end) {
                (Some(other), None, false, false) => Place::Before(other),
                (None, Some(other), false, false) => Place::After(other),
                (None, None, true, false) => Place::Start,
                (None, None, false, true) => Place::End,
                _ => bail!("say where: --before SHOT, --after SHOT, --start or --end"),
            };
            Edit::ShotMove { shot, to }
        }
        ShotCmd::Duplicate { shot } => Edit::ShotDuplicate { shot },
    })
}

/// The edit a `character` command asks for.
pub fn character_edit(command: RecordCmd) -> Result<Edit> {
    Ok(match command {
        RecordCmd::Add { name, values: v } => Edit::CharacterAdd {
            name,
            values: values(&v)?,
        },
        RecordCmd::Set { name, values: v } => Edit::CharacterSet {
            character: name,
            values: values(&v)?,
        },
        RecordCmd::Delete { name } => Edit::CharacterDelete { character: name },
    })
}

/// The edit a `look` command asks for.
pub fn look_edit(command: RecordCmd) -> Result<Edit> {
    Ok(match command {
        RecordCmd::Add { name, values: v } => Edit::LookAdd {
            name,
            values: values(&v)?,
        },
        RecordCmd::Set { name, values: v } => Edit::LookSet {
            look: name,
            values: values(&v)?,
        },
        RecordCmd::Delete { name } => Edit::LookDelete { look: name },
    })
}

/// Apply one edit through the node and say what it did.
pub fn run_edit(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    edit: Edit,
) -> Result<()> {
    let request = Request::Edit {
        project: project.map(str::to_owned),
        client: CLIENT.to_owned(),
        edit,
    };
    match super::ask(data_root, request)? {
        Reply::Edited { summary, .. } => {
            writeln!(out, "{summary}")?;
            Ok(())
        }
        other => Err(super::unexpected(&other)),
    }
}

/// `reelmesh review SHOT ...`
pub fn review(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    shot: String,
    command: ReviewCmd,
) -> Result<()> {
    let verdict = match command {
        ReviewCmd::Approve => Verdict::Approve,
        ReviewCmd::Revise { note } => Verdict::Revise { note },
        ReviewCmd::Regenerate => {
            let request = Request::Regenerate {
                project: project.map(str::to_owned),
                shot,
            };
            let Reply::Queued(queued) = super::ask(data_root, request)? else {
                bail!("the node answered something else than the queued take");
            };
            for job in &queued.queued {
                writeln!(
                    out,
                    "queued a new take of {} (job {}): `reelmesh jobs` follows it",
                    job.shot_code,
                    &job.job_id[..job.job_id.len().min(8)]
                )?;
            }
            return Ok(());
        }
    };
    run_edit(out, data_root, project, Edit::Review { shot, verdict })
}

/// `reelmesh take select SHOT TAKE`.
pub fn select_take(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    command: TakeCmd,
) -> Result<()> {
    let TakeCmd::Select { shot, take } = command;
    let take = if take == "latest" {
        String::new()
    } else {
        take
    };
    run_edit(out, data_root, project, Edit::TakeSelect { shot, take })
}

/// `reelmesh undo` / `reelmesh redo`.
pub fn undo(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    redo: bool,
) -> Result<()> {
    let project = project.map(str::to_owned);
    let client = CLIENT.to_owned();
    let request = if redo {
        Request::Redo { project, client }
    } else {
        Request::Undo { project, client }
    };
    match super::ask(data_root, request)? {
        Reply::Undone {
            summary: Some(summary),
            left,
            ..
        } => {
            writeln!(
                out,
                "{summary} ({left} more to {})",
                if redo { "redo" } else { "undo" }
            )?;
            Ok(())
        }
        Reply::Undone { summary: None, .. } => {
            writeln!(
                out,
                "nothing to {} (edits made from the command line in this data dir)",
                if redo { "redo" } else { "undo" }
            )?;
            Ok(())
        }
        other => Err(super::unexpected(&other)),
    }
}

/// The edit `reelmesh catalog add|remove` asks for.
pub(super) fn catalog_edit(command: CatalogCmd) -> Edit {
    match command {
        CatalogCmd::Add { name, value } => Edit::CatalogAdd {
            catalog: name,
            value,
        },
        CatalogCmd::Remove { name, value } => Edit::CatalogRemove {
            catalog: name,
            value,
        },
    }
}
