//! `reelmesh advise`: a video workflow recommended for each shot, with its reason
//! (the LLM the node is set up with, or the rules), and `--accept` to take them.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::Args;
use reelmesh_protocol::api::edit::Edit;
use reelmesh_protocol::api::{Reply, Request};
use reelmesh_protocol::model::Advice;

/// `reelmesh advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Shots: SHT-00001..SHT-00010, 1..10, 1,3,7 or all.
    #[arg(long, default_value = "all")]
    pub shots: String,
    /// Take the advice instead of asking: `all`, or shot codes. Sets each shot's
    /// workflow to its advised one (one undo step).
    #[arg(long, num_args = 1.., value_name = "all|SHOT")]
    pub accept: Option<Vec<String>>,
    /// The OpenAI-compatible API's base URL (`http://127.0.0.1:11434/v1` for
    /// Ollama); default: the node's, `OPENAI_BASE_URL`, llm.toml, or OpenAI's.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// The model; default: the node's, `REELMESH_LLM_MODEL`, or llm.toml. With none
    /// the rule-based advisor answers. The key is read from `OPENAI_API_KEY`.
    #[arg(long, value_name = "NAME")]
    pub llm_model: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run it.
///
/// # Errors
/// The node's errors (no such project or shot, a broken llm.toml).
pub fn run(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    args: &AdviseArgs,
) -> Result<()> {
    if let Some(accept) = &args.accept {
        let shots = if accept.iter().any(|s| s.eq_ignore_ascii_case("all")) {
            Vec::new()
        } else {
            accept.clone()
        };
        return super::edit::run_edit(out, data_root, project, Edit::AdviceAccept { shots });
    }
    let request = Request::Advise {
        project: project.map(str::to_owned),
        shots: args.shots.clone(),
        llm: reelmesh_protocol::advice::LlmChoice {
            url: args.llm_url.clone(),
            model: args.llm_model.clone(),
        },
    };
    let Reply::Advised { advice, stats, .. } = super::ask(data_root, request)? else {
        anyhow::bail!("the node answered something else than advice (another reelmesh version?)");
    };
    if args.json {
        let lines: Vec<serde_json::Value> = advice
            .iter()
            .map(|(code, a)| serde_json::json!({ "shot": code, "advice": a }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({ "advice": lines, "stats": stats })
        )?;
        return Ok(());
    }
    let mut rows: Vec<(String, Advice)> = advice;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let source = rows
        .iter()
        .map(|(_, a)| a.source.as_str())
        .find(|s| !s.is_empty())
        .unwrap_or(Advice::RULES)
        .to_owned();
    if source == Advice::RULES {
        writeln!(
            out,
            "no LLM is configured (--llm-model, REELMESH_LLM_MODEL or llm.toml): this is rule-based advice"
        )?;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(code, a)| {
            if a.usable() {
                vec![
                    code.clone(),
                    a.workflow.clone(),
                    a.confidence.map_or_else(String::new, |c| format!("{c:.2}")),
                    a.frames.map_or_else(String::new, |f| f.to_string()),
                    a.reason.clone(),
                ]
            } else {
                vec![
                    code.clone(),
                    "-".into(),
                    String::new(),
                    String::new(),
                    format!("no advice: {}", a.error),
                ]
            }
        })
        .collect();
    // The reason is the point: it is printed whole.
    super::print_table_with(
        out,
        &["SHOT", "WORKFLOW", "CONF", "FRAMES", "WHY"],
        &cells,
        true,
    )?;
    let failed = rows.iter().filter(|(_, a)| !a.usable()).count();
    let how = if source == Advice::RULES {
        "the rules".to_owned()
    } else {
        format!(
            "{source} ({} requests, at most {} at once)",
            stats.requests, stats.max_in_flight
        )
    };
    writeln!(
        out,
        "advised {} shot{} with {how} in {:.1} s{}; accept with `reelmesh advise --accept all` (or shot codes)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        stats.elapsed_ms as f64 / 1000.0,
        if failed > 0 {
            format!(", {failed} without advice")
        } else {
            String::new()
        }
    )?;
    Ok(())
}
