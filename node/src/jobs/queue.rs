//! Queueing render jobs: `reelmesh render --shots SHT-00001..SHT-00010 --workflow X`.
//!
//! Everything a run needs is decided here and written into the job, so a job run
//! later (or on another node) renders what was asked for: the assembled prompt, a
//! seed, the LoRAs of the shot's characters with their bible strengths.

use reelmesh_protocol::document::ProjectDoc;
use reelmesh_protocol::jobs::Job;
use reelmesh_protocol::model::{Project, Shot, ShotCode};
use reelmesh_protocol::prompt::shot_prompt;
use serde::{Deserialize, Serialize};

use crate::workflows::Catalog;

/// What to render.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderRequest {
    /// Which shots: `SHT-00001..SHT-00010`, `1..10`, `1,3,7`, `SHT-00004`, or `all`.
    pub shots: String,
    /// Workflow id.
    pub workflow: String,
    /// A fixed seed for every job (default: a fresh random seed per job).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
}

/// One queued job, for the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The job.
    pub job_id: String,
    /// Its shot's code.
    pub shot_code: String,
}

/// The live shots a selection names, in timeline order. Errors name the part of the
/// selection that is wrong.
pub fn select_shots<'a>(project: &'a Project, selection: &str) -> Result<Vec<&'a Shot>, String> {
    let selection = selection.trim();
    if selection.eq_ignore_ascii_case("all") {
        if project.shots.is_empty() {
            return Err("the project has no shots".into());
        }
        return Ok(project.shots.iter().collect());
    }
    let mut wanted: Vec<(ShotCode, ShotCode)> = Vec::new();
    for part in selection
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let range = match part.split_once("..") {
            Some((from, to)) => {
                let to = to.trim_start_matches('=');
                let from: ShotCode = from.parse()?;
                let to: ShotCode = to.parse()?;
                if to < from {
                    return Err(format!("'{part}': the range runs backwards"));
                }
                (from, to)
            }
            None => {
                let code: ShotCode = part.parse()?;
                (code, code)
            }
        };
        wanted.push(range);
    }
    if wanted.is_empty() {
        return Err("no shots named (use SHT-00001..SHT-00010, 1,3,7 or all)".into());
    }
    let chosen: Vec<&Shot> = project
        .shots
        .iter()
        .filter(|s| {
            wanted
                .iter()
                .any(|(from, to)| (*from..=*to).contains(&s.code))
        })
        .collect();
    // A single code that is not there is a mistake worth naming.
    for (from, to) in &wanted {
        if from == to && !chosen.iter().any(|s| s.code == *from) {
            return Err(format!("no live shot {from} in the project"));
        }
    }
    if chosen.is_empty() {
        return Err(format!("no live shot in {selection}"));
    }
    Ok(chosen)
}

/// Queue one job per selected shot. Nothing is written when anything is wrong.
pub fn queue_render(
    doc: &mut ProjectDoc,
    catalog: &Catalog,
    request: &RenderRequest,
    created_by: &str,
    now_ms: u64,
) -> Result<Vec<Queued>, String> {
    let workflow = catalog.get(&request.workflow).ok_or_else(|| {
        let known: Vec<String> = catalog.iter().map(|w| w.manifest.id.clone()).collect();
        format!(
            "unknown workflow '{}' (known: {})",
            request.workflow,
            known.join(", ")
        )
    })?;
    let project = doc.project().map_err(|e| e.to_string())?;
    let shots = select_shots(&project, &request.shots)?;
    let takes_loras = workflow.manifest.bindings.lora_chain.is_some();
    let mut jobs = Vec::with_capacity(shots.len());
    for shot in shots {
        let seed = request.seed.unwrap_or_else(random_seed);
        let mut job = Job::new(&shot.shot_id, &request.workflow, seed, created_by, now_ms);
        job.priority = request.priority;
        job.prompt = shot_prompt(&project, shot).text;
        if takes_loras {
            for character in shot
                .characters
                .iter()
                .filter_map(|id| project.character(id))
            {
                if !character.lora_path.trim().is_empty() {
                    job.loras.insert(
                        character.lora_path.trim().to_owned(),
                        character.lora_strength,
                    );
                }
            }
        }
        jobs.push((job, shot.code));
    }
    let mut queued = Vec::with_capacity(jobs.len());
    for (job, code) in &jobs {
        doc.add_job(job).map_err(|e| e.to_string())?;
        doc.refresh_shot_status(&job.shot_id)
            .map_err(|e| e.to_string())?;
        queued.push(Queued {
            job_id: job.job_id.clone(),
            shot_code: code.to_string(),
        });
    }
    Ok(queued)
}

/// A seed ComfyUI samplers accept (they take 0 ..= 2^64-1; keep to 2^53 so the value
/// survives any JSON reader).
fn random_seed() -> u64 {
    rand::random::<u64>() & ((1_u64 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelmesh_protocol::document::Position;

    fn doc_with(codes: &[u64]) -> ProjectDoc {
        let mut doc = ProjectDoc::create("t", "p").expect("create");
        let shots: Vec<Shot> = codes
            .iter()
            .map(|c| {
                let mut shot = Shot::new(ShotCode(*c), 24);
                shot.action = format!("장면 {c}: 문이 열린다");
                shot
            })
            .collect();
        doc.add_shots(&shots, &Position::End).expect("add");
        doc
    }

    fn codes(project: &Project, selection: &str) -> Result<Vec<u64>, String> {
        select_shots(project, selection).map(|s| s.iter().map(|s| s.code.0).collect())
    }

    #[test]
    fn selections_name_ranges_lists_and_all() {
        let doc = doc_with(&[1, 2, 3, 5, 8]);
        let project = doc.project().expect("read");
        assert_eq!(codes(&project, "SHT-00001..SHT-00003"), Ok(vec![1, 2, 3]));
        assert_eq!(codes(&project, "2..6"), Ok(vec![2, 3, 5]));
        assert_eq!(codes(&project, "8, 1"), Ok(vec![1, 8]));
        assert_eq!(codes(&project, "all"), Ok(vec![1, 2, 3, 5, 8]));
        assert!(
            codes(&project, "4")
                .expect_err("missing")
                .contains("SHT-00004")
        );
        assert!(
            codes(&project, "9..12")
                .expect_err("none")
                .contains("no live shot")
        );
        assert!(
            codes(&project, "5..2")
                .expect_err("backwards")
                .contains("backwards")
        );
        assert!(codes(&project, "x").is_err());
        assert!(codes(&project, "").is_err());
    }

    #[test]
    fn queueing_records_prompt_seed_and_status_and_refuses_unknown_workflows() {
        let mut doc = doc_with(&[1, 2]);
        let catalog = Catalog::builtin();
        let request = RenderRequest {
            shots: "1..2".into(),
            workflow: "card".into(),
            seed: Some(7),
            priority: 2,
        };
        let queued = queue_render(&mut doc, &catalog, &request, "me", 100).expect("queue");
        assert_eq!(queued.len(), 2);
        let jobs = doc.jobs().expect("jobs");
        assert!(
            jobs.iter()
                .all(|j| j.seed == 7 && j.priority == 2 && j.created_by == "me")
        );
        assert!(jobs.iter().all(|j| !j.prompt.is_empty()));
        let project = doc.project().expect("read");
        assert!(
            project
                .shots
                .iter()
                .all(|s| s.status == reelmesh_protocol::model::ShotStatus::Generating)
        );

        let heads = doc.heads();
        let bad = RenderRequest {
            workflow: "nope".into(),
            ..request
        };
        let err = queue_render(&mut doc, &catalog, &bad, "me", 100).expect_err("unknown");
        assert!(err.contains("unknown workflow 'nope'"), "{err}");
        assert_eq!(doc.heads(), heads);
    }
}
