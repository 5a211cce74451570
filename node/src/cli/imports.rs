//! `reelmesh import`: its options, the call to the node and the report as a person
//! reads it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{ask, display_width, pad, unexpected};
use crate::api::{Reply, Request};
use crate::import;

/// `reelmesh import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file: .xlsx, .xlsm, .xlsb, .xls, .ods, .csv, .tsv or .json.
    pub file: PathBuf,
    /// Print how every sheet and column was understood, what would change and every
    /// problem; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Refuse characters and looks the shots name but nothing defines (instead of
    /// creating them).
    #[arg(long)]
    pub strict: bool,
    /// When a cell was changed both in the file and in the project since the export,
    /// keep the project's value (default: the file's).
    #[arg(long)]
    pub keep_project: bool,
    /// Import a file reelmesh exported as a plain file: every cell is the truth
    /// (no three-way comparison with the version it was exported from).
    #[arg(long)]
    pub plain: bool,
    /// What a header means: `--map '외형 묘사=appearance'` (FIELD may be `extra` or
    /// `skip`). Repeatable; remembered in the project for the next import.
    #[arg(long = "map", value_name = "HEADER=FIELD")]
    pub maps: Vec<String>,
    /// Print every problem, not the first 20 and a count per kind.
    #[arg(long)]
    pub all_errors: bool,
    /// Write every problem to this file, one per line.
    #[arg(long, value_name = "FILE")]
    pub errors_file: Option<PathBuf>,
}

impl ImportArgs {
    fn options(&self) -> import::ImportOptions {
        import::ImportOptions {
            dry_run: self.dry_run,
            strict: self.strict,
            keep_project: self.keep_project,
            maps: self.maps.clone(),
            plain: self.plain,
        }
    }
}

/// Run `import` through the node (the running one, else one started here).
pub(super) fn run_import(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    args: &ImportArgs,
) -> Result<()> {
    let path =
        std::path::absolute(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let request = Request::Import {
        project: project.map(str::to_owned),
        path,
        options: args.options(),
    };
    let report = match ask(data_root, request)? {
        Reply::Imported { report, .. } => report,
        other => return Err(unexpected(&other)),
    };
    if let Some(path) = &args.errors_file {
        let mut text = String::new();
        for problem in &report.problems {
            text.push_str(&problem.to_string());
            text.push('\n');
        }
        std::fs::write(path, text)
            .with_context(|| format!("writing the problems to {}", path.display()))?;
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_import_report(out, &report, args.dry_run)?;
    }
    if report.problems.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{}: nothing was imported, {}",
        report.file,
        import::report::count_problems(report.problems.len())
    );
    if !args.json {
        message.push_str(":\n");
        message.push_str(
            import::report::summarize_problems(&report.problems, args.all_errors).trim_end(),
        );
    }
    if let Some(path) = &args.errors_file {
        message.push_str(&format!("\n(every problem is in {})", path.display()));
    }
    Err(anyhow::anyhow!(message))
}

/// Print what an import did (or, `dry_run`, would do), as a person reads it.
pub fn print_import_report(
    out: &mut dyn Write,
    report: &import::ImportReport,
    dry_run: bool,
) -> Result<()> {
    use import::report::{plural, thousands};
    if dry_run {
        writeln!(out, "dry run of {}: nothing was written", report.file)?;
        print_sheets(out, &report.sheets)?;
    }
    if report.problems.is_empty() {
        let verb = if dry_run { "would import" } else { "imported" };
        writeln!(
            out,
            "{verb} {}: {} added, {} updated; {} added, {} updated; {} added, {} updated",
            report.file,
            plural(report.shots_added, "shot", "shots"),
            thousands(report.shots_updated),
            plural(report.characters_added, "character", "characters"),
            report.characters_updated,
            plural(
                report.cinematics_added,
                "cinematic option",
                "cinematic options"
            ),
            report.cinematics_updated
        )?;
    }
    if dry_run && report.problems.is_empty() {
        print_changes(out, report)?;
    }
    print_merge(out, report)?;
    for line in import::report::created_lines(report, dry_run) {
        writeln!(out, "{line}")?;
    }
    for note in &report.notes {
        writeln!(out, "{note}")?;
    }
    for (header, field) in &report.remembered {
        let verb = if report.written {
            "remembered"
        } else {
            "would remember"
        };
        writeln!(out, "{verb} --map '{header}={field}' for this project")?;
    }
    if dry_run && report.problems.is_empty() {
        writeln!(out, "no problems")?;
    }
    Ok(())
}

/// Each sheet of a dry run and how its columns read: `header → field (how) (note)
/// [N formulas]`, headers padded to one width.
fn print_sheets(out: &mut dyn Write, sheets: &[import::report::SheetReport]) -> Result<()> {
    use import::report::{plural, thousands};
    for sheet in sheets {
        let Some(kind) = &sheet.kind else {
            writeln!(out, "sheet '{}': not imported", sheet.name)?;
            continue;
        };
        writeln!(
            out,
            "sheet '{}' ({kind}, {})",
            sheet.name,
            plural(sheet.rows, "row", "rows")
        )?;
        let width = sheet
            .columns
            .iter()
            .map(|c| display_width(&c.header))
            .max()
            .unwrap_or(0)
            .min(30);
        for column in &sheet.columns {
            let mut line = format!("  {} → {}", pad(&column.header, width), column.reads_as);
            if column.how != "named" && column.how != "unknown" {
                line.push_str(&format!(" ({})", column.how));
            }
            if let Some(note) = &column.note {
                line.push_str(&format!(" ({note})"));
            }
            if column.formulas > 0 {
                line.push_str(&format!(" [{} formulas]", thousands(column.formulas)));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

/// The records a dry run would add, update or create, kind by kind: shot codes
/// as runs (`SHT-00001–SHT-00040`), names up to twelve.
fn print_changes(out: &mut dyn Write, report: &import::ImportReport) -> Result<()> {
    use import::report::plural;
    for (kind, one, many) in [
        ("shots", "shot", "shots"),
        ("characters", "character", "characters"),
        ("cinematic_options", "cinematic option", "cinematic options"),
    ] {
        for change in ["add", "update", "create"] {
            let records: Vec<&str> = report
                .changes
                .iter()
                .filter(|c| c.kind == kind && c.change == change)
                .map(|c| c.record.as_str())
                .collect();
            if records.is_empty() {
                continue;
            }
            let list = if kind == "shots" {
                import::report::code_runs(&records, 8)
            } else {
                let mut list = records
                    .iter()
                    .take(12)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if records.len() > 12 {
                    list.push_str(&format!(", and {} more", records.len() - 12));
                }
                list
            };
            writeln!(
                out,
                "  would {change} {}: {list}",
                plural(records.len(), one, many)
            )?;
        }
    }
    Ok(())
}

/// How a file exported from this project merged with the edits made since: the
/// cells taken from each side and every conflict with the side kept.
fn print_merge(out: &mut dyn Write, report: &import::ImportReport) -> Result<()> {
    use import::report::plural;
    if let Some(base) = &report.base {
        writeln!(
            out,
            "compared with the version it was exported from: {} edited in the file, {} kept",
            plural(base.changed_in_file, "cell", "cells"),
            plural(
                base.kept_from_project,
                "newer project edit",
                "newer project edits"
            )
        )?;
    }
    for conflict in &report.conflicts {
        writeln!(
            out,
            "conflict: {} {}: the file says {:?}, the project {:?} (was {:?}); kept the {}'s",
            conflict.record,
            conflict.field,
            conflict.file,
            conflict.project,
            conflict.base,
            conflict.kept
        )?;
    }
    Ok(())
}
