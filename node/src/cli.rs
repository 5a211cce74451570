//! The command line: one subcommand per scripted action.
//!
//! Commands that read or edit a project go through the running node when there is
//! one (its control socket), so an edit reaches the mesh at once; with no node
//! running they open the data dir themselves, under its lock.

mod net;
mod render;
mod workflows;

pub use net::print_peers;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reelmesh_protocol::model::Project;
use reelmesh_protocol::timecode::FrameRate;
use reelmesh_ui::table::{ShotRow, shot_rows};

use crate::store::{DataDir, default_data_dir};
use crate::{demo, export, import};

/// reelmesh: a peer-to-peer render mesh for AI film pre-production.
#[derive(Debug, Parser)]
#[command(name = "reelmesh", version, about)]
pub struct Cli {
    /// Data dir (default: $XDG_DATA_HOME/reelmesh or ~/.local/share/reelmesh).
    #[arg(long, global = true, env = "REELMESH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Project by name or id (default: the current project).
    #[arg(long, global = true)]
    pub project: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project and make it current.
    Init {
        /// Project name.
        name: String,
        /// Timeline frame rate: 23.976, 24, 25, 29.97df, 30, 50, 59.94df, 60.
        #[arg(long, default_value = "24")]
        frame_rate: FrameRate,
    },
    /// Import a shot list (.xlsx, .xls, .ods, .csv, .json) into the project.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Export the project (.xlsx or .json, by extension).
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// List the shots with timecodes.
    Shots {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print every shot's prompt.
    Prompts,
    /// List the projects in the data dir.
    Projects,
    /// Run the node: join the mesh, sync projects, announce presence.
    Node(net::NodeArgs),
    /// Make or share the private mesh key.
    Mesh {
        /// What to do.
        #[command(subcommand)]
        command: net::MeshCommand,
    },
    /// Join a mesh (and its project) with a ticket from `reelmesh mesh invite`.
    Join {
        /// The ticket (starts with `reelmesh1`).
        ticket: String,
    },
    /// Print this node and its peers (the worker table).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the project's heads (the version every peer should reach).
    Heads,
    /// Wait until the running node's project holds these heads (from `heads`).
    WaitFor {
        /// Heads, as printed by `reelmesh heads`.
        #[arg(required = true)]
        heads: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value = "60")]
        timeout: u64,
    },
    /// Render shots: queue one job per shot and follow them to the end.
    Render(render::RenderArgs),
    /// List the project's render jobs.
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the project's takes (rendered results, by BLAKE3 hash).
    Takes {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also copy every take held here into this folder, named by shot code and
        /// take id (`SHT-00001_3f2a9c1e.png`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Cancel render jobs (by id or unique id prefix), from any node.
    Cancel {
        /// Job ids.
        #[arg(required = true)]
        job_ids: Vec<String>,
    },
    /// List and check workflows (built-in and the data dir's `workflows/`).
    Workflows {
        /// What to do.
        #[command(subcommand)]
        command: workflows::WorkflowsCmd,
    },
    /// Build the demo project from the sample shot list and print it.
    Demo {
        /// Keep the demo data dir instead of removing it.
        #[arg(long)]
        keep: bool,
    },
}

/// Run one command.
pub fn run(cli: Cli) -> Result<()> {
    let data_root = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Demo { keep } => demo::run(out, cli.data_dir.as_deref(), keep),
        Command::Init { name, frame_rate } => {
            let data = DataDir::open(&data_root)?;
            let _lock = data
                .lock()
                .context("creating a project needs the node stopped")?;
            let mut store = data.create_project(&name)?;
            store.doc_mut().set_frame_rate(frame_rate)?;
            store.save()?;
            let project = store.doc().project()?;
            writeln!(
                out,
                "created project '{}' ({}) at {} fps in {}",
                name,
                project.project_id,
                frame_rate,
                data.root().display()
            )?;
            Ok(())
        }
        Command::Import { file } => {
            let report = match net::import_via_node(&data_root, cli.project.clone(), &file)? {
                Some(report) => report,
                None => {
                    let data = DataDir::open(&data_root)?;
                    let _lock = data.lock()?;
                    let mut store = data.open_project(cli.project.as_deref())?;
                    let report = import::import_file(store.doc_mut(), &file)?;
                    store.save().context("saving the imported project")?;
                    report
                }
            };
            writeln!(
                out,
                "imported {}: {} shots added, {} updated, {} characters, {} cinematic options",
                file.display(),
                report.shots_added,
                report.shots_updated,
                report.characters,
                report.cinematics
            )?;
            print_kept_columns(out, &report)?;
            Ok(())
        }
        Command::Export { file } => {
            let project = open(&data_root, cli.project.as_deref())?;
            export::export_file(&project, &file)?;
            writeln!(
                out,
                "exported {} shots to {}",
                project.shots.len(),
                file.display()
            )?;
            Ok(())
        }
        Command::Shots { json } => {
            let project = open(&data_root, cli.project.as_deref())?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &shot_rows(&project))?;
                writeln!(out)?;
            } else {
                print_shots(out, &project)?;
            }
            Ok(())
        }
        Command::Prompts => {
            let project = open(&data_root, cli.project.as_deref())?;
            print_prompts(out, &project)?;
            Ok(())
        }
        Command::Projects => net::projects(out, &data_root),
        Command::Node(args) => net::run_node(&data_root, args),
        Command::Mesh { command } => net::mesh(out, &data_root, command),
        Command::Join { ticket } => net::join(out, &data_root, &ticket),
        Command::Status { json } => net::status(out, &data_root, json),
        Command::Heads => {
            for head in net::heads(&data_root, cli.project.as_deref())? {
                writeln!(out, "{head}")?;
            }
            Ok(())
        }
        Command::Render(args) => render::render(out, &data_root, cli.project.clone(), args),
        Command::Jobs { json } => render::print_jobs(out, &data_root, cli.project.as_deref(), json),
        Command::Takes { json, out: folder } => render::print_takes(
            out,
            &data_root,
            cli.project.as_deref(),
            json,
            folder.as_deref(),
        ),
        Command::Cancel { job_ids } => {
            render::cancel(out, &data_root, cli.project.as_deref(), &job_ids)
        }
        Command::Workflows { command } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let user_dir = crate::jobs::user_workflows_dir(&data_root);
            runtime.block_on(workflows::run(command, Some(&user_dir)))
        }
        Command::WaitFor { heads, timeout } => {
            net::wait_for(&data_root, cli.project.clone(), heads, timeout)?;
            writeln!(out, "arrived")?;
            Ok(())
        }
    }
}

/// The project, from the running node if there is one, else from disk.
fn open(data_root: &Path, project: Option<&str>) -> Result<Project> {
    if let Some((project, _)) = net::project_via_node(data_root, project)? {
        return Ok(project);
    }
    let data = DataDir::open(data_root)?;
    let _lock = data.lock()?;
    Ok(data.open_project(project)?.doc().project()?)
}

/// Print the shot table.
pub fn print_shots(out: &mut dyn Write, project: &Project) -> Result<()> {
    let rows = shot_rows(project);
    writeln!(
        out,
        "{} — {} shots at {}",
        project.settings.name,
        rows.len(),
        project.settings.frame_rate.label()
    )?;
    let header = [
        "CODE",
        "IN",
        "OUT",
        "FRAMES",
        "SECONDS",
        "STATUS",
        "CHARACTERS",
        "ACTION",
    ];
    let cells: Vec<Vec<String>> = rows.iter().map(|r| row_cells(r).to_vec()).collect();
    print_table(out, &header, &cells)
}

/// Print rows under a header, columns padded by display width (Hangul is two
/// columns wide) and capped at 40.
pub fn print_table(out: &mut dyn Write, header: &[&str], cells: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for row in cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(display_width(cell)).min(40);
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| pad(cell, *width))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    writeln!(out, "{}", line(&header))?;
    for row in cells {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

/// Say which unknown columns an import kept as extra fields, if any.
pub fn print_kept_columns(out: &mut dyn Write, report: &import::ImportReport) -> Result<()> {
    if !report.kept_columns.is_empty() {
        writeln!(
            out,
            "kept unknown columns as extra fields: {}",
            report.kept_columns.join(", ")
        )?;
    }
    Ok(())
}

/// Print the prompt of every shot.
pub fn print_prompts(out: &mut dyn Write, project: &Project) -> Result<()> {
    for row in shot_rows(project) {
        let tag = if row.prompt_overridden {
            " (manual override)"
        } else {
            ""
        };
        writeln!(out, "{}{tag}: {}", row.code, row.prompt)?;
    }
    Ok(())
}

fn row_cells(row: &ShotRow) -> [String; 8] {
    [
        row.code.clone(),
        row.timecode_in.clone(),
        row.timecode_out.clone(),
        row.frames.to_string(),
        format!("{:.3}", row.duration_s),
        row.status.clone(),
        row.characters.join(", "),
        row.action.clone(),
    ]
}

/// Terminal columns of a string: Hangul and other wide characters take two.
fn display_width(text: &str) -> usize {
    text.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA960..=0xA97F | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6)
}

/// Pad (or cut with an ellipsis) to exactly `width` columns, never splitting a character.
fn pad(text: &str, width: usize) -> String {
    let mut result = String::new();
    let mut used = 0;
    let total = display_width(text);
    for c in text.chars() {
        let w = if is_wide(c) { 2 } else { 1 };
        if total > width && used + w > width.saturating_sub(1) {
            result.push('…');
            used += 1;
            break;
        }
        result.push(c);
        used += w;
    }
    result.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangul_is_padded_by_display_width_and_cut_on_character_boundaries() {
        assert_eq!(display_width("민아"), 4);
        assert_eq!(pad("민아", 6), "민아  ");
        assert_eq!(pad("비 오는 밤의 골목", 8), "비 오는…");
        assert_eq!(display_width(&pad("비 오는 밤의 골목", 8)), 8);
        assert_eq!(pad("abc", 2), "a…");
    }
}
