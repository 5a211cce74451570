//! The command line: one subcommand per scripted action.
//!
//! Commands that read or edit a project go through the running node when there is
//! one (its control socket), so an edit reaches the mesh at once; with no node
//! running they open the data dir themselves, under its lock.

mod advise;
mod edit;
mod imports;
mod net;
mod render;
mod workflows;

pub use imports::{ImportArgs, print_import_report};
pub use net::print_peers;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use reelmesh_protocol::model::Project;
use reelmesh_protocol::timecode::FrameRate;
use reelmesh_ui::table::{ShotRow, shot_rows};

use crate::api::{Client, Reply, Request};
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
    /// What to do (none: open the editor on the current project).
    #[command(subcommand)]
    pub command: Option<Command>,
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
    Import(ImportArgs),
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
    /// A project in one file with every take: create, verify, open.
    Archive {
        /// What to do.
        #[command(subcommand)]
        command: ArchiveCommand,
    },
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
    /// Recommend a video workflow for each shot, with the reason (the LLM: --llm-url
    /// and --llm-model, or OPENAI_BASE_URL, REELMESH_LLM_MODEL, OPENAI_API_KEY; else
    /// rule-based), or take the recommendations with --accept.
    Advise(advise::AdviseArgs),
    /// Render shots: queue one job per shot and follow them to the end.
    Render(render::RenderArgs),
    /// List the project's render jobs.
    Jobs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish the cut for an editor: the format is FILE's extension (.edl, .otio,
    /// .fcpxml, .xml for Premiere); each shot's take is copied beside it into
    /// FILE_media/ with a readable name.
    Publish {
        /// The file to write.
        #[arg(required_unless_present = "all")]
        file: Option<PathBuf>,
        /// Write every format into this folder instead (cut.edl, cut.otio,
        /// cut.fcpxml, cut.xml, animatic.mp4, storyboard.pdf), the approved shots'
        /// takes into approved/, and the project archive (project.rma).
        #[arg(long, value_name = "DIR", conflicts_with = "file")]
        all: Option<PathBuf>,
        /// The storyboard PDF's frames per page: 3x3, or 2x3 for larger frames.
        #[arg(long, value_name = "3x3|2x3", default_value = "3x3")]
        layout: reelmesh_protocol::publish::PageLayout,
        /// Leave the shot code, timecode and action off the animatic's picture.
        #[arg(long)]
        no_burn_in: bool,
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
    /// Edit shots: add, set fields, delete, restore, move, duplicate.
    Shot {
        /// What to do.
        #[command(subcommand)]
        command: edit::ShotCmd,
    },
    /// Edit the character bible: add, set fields, delete.
    #[command(after_help = format!("Fields: {}", reelmesh_protocol::api::edit::CHARACTER_FIELDS))]
    Character {
        /// What to do.
        #[command(subcommand)]
        command: edit::RecordCmd,
    },
    /// Edit the looks (cinematic options): add, set fields, delete.
    #[command(after_help = format!("Fields: {}", reelmesh_protocol::api::edit::LOOK_FIELDS))]
    Look {
        /// What to do.
        #[command(subcommand)]
        command: edit::RecordCmd,
    },
    /// Set the project's prompt template.
    Template {
        /// What to do.
        #[command(subcommand)]
        command: edit::TemplateCmd,
    },
    /// Review a shot: approve it, ask for a revision with a note, or regenerate it.
    Review {
        /// The shot: SHT-00003, 3, or its id.
        shot: String,
        /// The verdict.
        #[command(subcommand)]
        verdict: edit::ReviewCmd,
    },
    /// Choose the take a shot shows on the storyboard.
    Take {
        /// What to do.
        #[command(subcommand)]
        command: edit::TakeCmd,
    },
    /// Extend the dropdown catalogs of look values for this project.
    Catalog {
        /// What to do.
        #[command(subcommand)]
        command: edit::CatalogCmd,
    },
    /// Undo the last edit made from the command line in this data dir.
    Undo,
    /// Redo what `undo` undid.
    Redo,
    /// Open the editor window on the project (the default with no command). The
    /// window's node joins the mesh (offline without a mesh key); when a node
    /// already runs on the data dir, the editor attaches to it.
    Edit(net::NodeArgs),
    /// Build the demo project from the sample shot list and print it.
    Demo {
        /// Keep the demo data dir instead of removing it.
        #[arg(long)]
        keep: bool,
    },
}

/// Send `request` to the node of `data_root` (the running one, else one started
/// here for this command) and take its answer; the node's refusal is the error.
pub(crate) fn ask(data_root: &Path, request: Request) -> Result<Reply> {
    let client = Client::open(data_root)?;
    let reply = client.call(request)??;
    client.close()?;
    Ok(reply)
}

/// Send `request` to the node running on `data_root`; `None` when none runs.
pub(crate) fn via_node(data_root: &Path, request: &Request) -> Result<Option<Reply>> {
    Ok(crate::control::call(data_root, request, |_| {})?.transpose()?)
}

/// A node's answer of another kind than the request's.
pub(crate) fn unexpected(reply: &Reply) -> anyhow::Error {
    let kind = serde_json::to_value(reply)
        .ok()
        .and_then(|v| v.get("reply").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default();
    anyhow::anyhow!(
        "the node answered with '{kind}', not what was asked (another reelmesh version?)"
    )
}

/// Run one command.
pub fn run(cli: Cli) -> Result<()> {
    let data_root = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let out = &mut std::io::stdout().lock();
    let command = cli.command.unwrap_or_else(|| {
        /// `reelmesh` alone: `edit` with the node's default arguments.
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: net::NodeArgs,
        }
        Command::Edit(Defaults::parse_from(["reelmesh"]).args)
    });
    match command {
        Command::Edit(args) => net::edit(&data_root, cli.project.clone(), args),
        Command::Demo { keep } => demo::run(out, cli.data_dir.as_deref(), keep),
        Command::Init { name, frame_rate } => init(out, &data_root, &name, frame_rate),
        Command::Import(args) => {
            imports::run_import(out, &data_root, cli.project.as_deref(), &args)
        }
        Command::Export { file } => export(out, &data_root, cli.project.as_deref(), &file),
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
        Command::Archive { command } => archive(out, &data_root, cli.project.as_deref(), command),
        Command::Mesh { command } => net::mesh(out, &data_root, command),
        Command::Join { ticket } => net::join(out, &data_root, &ticket),
        Command::Status { json } => net::status(out, &data_root, json),
        Command::Heads => {
            for head in net::heads(&data_root, cli.project.as_deref())? {
                writeln!(out, "{head}")?;
            }
            Ok(())
        }
        Command::Advise(args) => advise::run(out, &data_root, cli.project.as_deref(), &args),
        Command::Render(args) => render::render(out, &data_root, cli.project.clone(), &args),
        Command::Jobs { json } => render::print_jobs(out, &data_root, cli.project.as_deref(), json),
        Command::Publish {
            file,
            all,
            layout,
            no_burn_in,
        } => publish(
            out,
            &data_root,
            cli.project.as_deref(),
            (file, all),
            reelmesh_protocol::publish::PublishOptions {
                layout,
                burn_in: !no_burn_in,
            },
        ),
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
        Command::Shot { command } => {
            let edit = edit::shot_edit(command)?;
            edit::run_edit(out, &data_root, cli.project.as_deref(), edit)
        }
        Command::Character { command } => {
            let edit = edit::character_edit(command)?;
            edit::run_edit(out, &data_root, cli.project.as_deref(), edit)
        }
        Command::Look { command } => {
            let edit = edit::look_edit(command)?;
            edit::run_edit(out, &data_root, cli.project.as_deref(), edit)
        }
        Command::Template {
            command: edit::TemplateCmd::Set { template },
        } => edit::run_edit(
            out,
            &data_root,
            cli.project.as_deref(),
            reelmesh_protocol::api::edit::Edit::TemplateSet { template },
        ),
        Command::Review { shot, verdict } => {
            edit::review(out, &data_root, cli.project.as_deref(), shot, verdict)
        }
        Command::Take { command } => {
            edit::select_take(out, &data_root, cli.project.as_deref(), command)
        }
        Command::Catalog { command } => {
            let edit = edit::catalog_edit(command);
            edit::run_edit(out, &data_root, cli.project.as_deref(), edit)
        }
        Command::Undo => edit::undo(out, &data_root, cli.project.as_deref(), false),
        Command::Redo => edit::undo(out, &data_root, cli.project.as_deref(), true),
        Command::WaitFor { heads, timeout } => {
            net::wait_for(&data_root, cli.project.clone(), heads, timeout)?;
            writeln!(out, "arrived")?;
            Ok(())
        }
    }
}

/// `reelmesh init`: create a project in the data dir (the node must be stopped).
/// `reelmesh publish FILE` or `--all DIR`.
fn publish(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    (file, all): (Option<PathBuf>, Option<PathBuf>),
    options: reelmesh_protocol::publish::PublishOptions,
) -> Result<()> {
    match (file, all) {
        (_, Some(dir)) => render::publish_all(out, data_root, project, &dir, options),
        (Some(file), None) => render::publish(out, data_root, project, &file, options),
        (None, None) => anyhow::bail!("give a FILE to write, or --all DIR"),
    }
}

fn init(out: &mut dyn Write, data_root: &Path, name: &str, frame_rate: FrameRate) -> Result<()> {
    let data = DataDir::open(data_root)?;
    let _lock = data
        .lock()
        .context("creating a project needs the node stopped")?;
    let mut store = data.create_project(name)?;
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

/// `reelmesh export`: write the project to `file`, marked with the version it is
/// of (so that importing it back merges three ways).
fn export(out: &mut dyn Write, data_root: &Path, project: Option<&str>, file: &Path) -> Result<()> {
    let (project, heads) = open_with_heads(data_root, project)?;
    let mark = import::ExportMark {
        project_id: project.project_id.clone(),
        heads,
    };
    export::export_file(&project, file, Some(&mark))?;
    writeln!(
        out,
        "exported {} shots to {}",
        project.shots.len(),
        file.display()
    )?;
    Ok(())
}

/// The project and its version, from the running node if there is one, else from disk.
fn open_with_heads(data_root: &Path, project: Option<&str>) -> Result<(Project, Vec<String>)> {
    if let Some(found) = net::project_via_node(data_root, project)? {
        return Ok(found);
    }
    let data = DataDir::open(data_root)?;
    let _lock = data.lock()?;
    let (_, project, heads) = data.read_project(project)?;
    Ok((project, heads))
}

/// The project, from the running node if there is one, else from disk.
fn open(data_root: &Path, project: Option<&str>) -> Result<Project> {
    Ok(open_with_heads(data_root, project)?.0)
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
    print_table_with(out, header, cells, false)
}

/// [`print_table`]; with `last_whole` the last column is printed whole (nothing
/// follows it to keep aligned), for a reason that is the point of the row.
pub fn print_table_with(
    out: &mut dyn Write,
    header: &[&str],
    cells: &[Vec<String>],
    last_whole: bool,
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for row in cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(display_width(cell)).min(40);
        }
    }
    // The whole table is built first and written at once (a write per line cost
    // more than the table on 10,000 shots).
    let mut text = String::with_capacity(
        (widths.iter().sum::<usize>() + 2 * widths.len()) * (cells.len() + 1),
    );
    let mut line = |row: &mut dyn Iterator<Item = &str>| {
        let start = text.len();
        for (index, (cell, width)) in row.zip(&widths).enumerate() {
            if index > 0 {
                text.push_str("  ");
            }
            if last_whole && index + 1 == widths.len() {
                text.push_str(&one_line(cell));
            } else {
                text.push_str(&pad(cell, *width));
            }
        }
        let end = text[start..].trim_end().len() + start;
        text.truncate(end);
        text.push('\n');
    };
    line(&mut header.iter().copied());
    for row in cells {
        line(&mut row.iter().map(String::as_str));
    }
    out.write_all(text.as_bytes())?;
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

/// The terminal's width in columns (100 when stdout is not a terminal).
pub(crate) fn terminal_width() -> usize {
    match console::Term::stdout().size_checked() {
        Some((_, columns)) if columns >= 40 => usize::from(columns),
        _ => 100,
    }
}

/// `text` broken at spaces into lines of at most `width` columns after `indent`
/// (a word longer than a line gets a line of its own, whole: a file name or a URL
/// stays copyable). Hangul counts two columns a character.
pub(crate) fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let room = width.saturating_sub(display_width(indent)).max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for word in text.split_whitespace() {
        let w = display_width(word);
        if used > 0 && used + 1 + w > room {
            lines.push(format!("{indent}{line}"));
            line.clear();
            used = 0;
        }
        if used > 0 {
            line.push(' ');
            used += 1;
        }
        line.push_str(word);
        used += w;
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines
}

/// [`display_width`], for the tests of other modules.
#[cfg(test)]
pub(crate) fn display_width_for_tests(text: &str) -> usize {
    display_width(text)
}

/// Terminal columns of a string: Hangul and other wide characters take two.
pub(crate) fn display_width(text: &str) -> usize {
    text.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA960..=0xA97F | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6)
}

/// `text` on one line: runs of control characters (newlines, tabs) become a space.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(char::is_control) {
        text.split(char::is_control)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .into()
    } else {
        text.into()
    }
}

/// Pad (or cut with an ellipsis) to exactly `width` columns, never splitting a
/// character; line breaks and tabs print as spaces, so a multi-line cell stays on its
/// row.
pub(crate) fn pad(text: &str, width: usize) -> String {
    let text = &*one_line(text);
    let total = display_width(text);
    if total <= width {
        let mut result = String::with_capacity(text.len() + width - total);
        result.push_str(text);
        result.extend(std::iter::repeat_n(' ', width - total));
        return result;
    }
    let mut result = String::new();
    let mut used = 0;
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
        assert_eq!(pad("two\r\nlines", 12), "two lines   ");
    }
}

/// `reelmesh archive ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ArchiveCommand {
    /// Write the project, its history and every blob it refers to into FILE, with a
    /// manifest of BLAKE3 hashes.
    Create {
        /// The archive to write.
        file: PathBuf,
    },
    /// Check every file in the archive against its manifest; names each that does
    /// not match.
    Verify {
        /// The archive.
        file: PathBuf,
    },
    /// Verify, then add the archived project with every take to this data dir.
    Open {
        /// The archive.
        file: PathBuf,
    },
}

fn archive(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    command: ArchiveCommand,
) -> Result<()> {
    let data = crate::store::DataDir::open(data_root)?;
    match command {
        ArchiveCommand::Create { file } => {
            let created = crate::archive::create(&data, project, &file)?;
            let blobs = created.manifest.files.len() - 1;
            writeln!(
                out,
                "archived {} ({}) with {blobs} blobs into {}",
                created.manifest.name,
                created.manifest.project_id,
                file.display()
            )?;
            if !created.missing.is_empty() {
                writeln!(
                    out,
                    "not archived, not on this machine ({}): {}",
                    created.missing.len(),
                    created.missing.join(", ")
                )?;
            }
        }
        ArchiveCommand::Verify { file } => {
            let (manifest, _) = crate::archive::verify(&file)?;
            writeln!(
                out,
                "{}: ok, {} files match the manifest ({} · {})",
                file.display(),
                manifest.files.len(),
                manifest.name,
                manifest.project_id
            )?;
        }
        ArchiveCommand::Open { file } => {
            let _lock = data.lock().map_err(|e| {
                anyhow::anyhow!("{e}: stop the node before opening an archive into its data dir")
            })?;
            let (id, name, blobs) = crate::archive::open(&data, &file)?;
            writeln!(
                out,
                "opened {name} ({id}) with {blobs} blobs into {}; it is the current project",
                data_root.display()
            )?;
        }
    }
    Ok(())
}
