//! Queueing render jobs: `reelmesh render --shots SHT-00001..SHT-00010 --workflow X`.
//!
//! Everything a run needs is decided here and written into the job, so a job run
//! later (or on another node) renders what was asked for: the assembled prompt, a
//! seed, the LoRAs of the shot's characters with their bible strengths, the clip's
//! length (the shot's, up to the workflow's default) and the job's estimated work.

use reelmesh_protocol::document::ProjectDoc;
use reelmesh_protocol::jobs::{Job, Take, TakeMedia};
use reelmesh_protocol::model::{Project, Shot, ShotCode};
use reelmesh_protocol::prompt::shot_prompt;
use reelmesh_protocol::timecode::FrameRate;

use crate::workflows::{Catalog, Manifest, OutputKind};

pub use reelmesh_protocol::api::render::{Queued, RenderRequest};

/// The input roles a workflow can bind, with the CLI flag that fills each.
pub const INPUT_ROLES: [(&str, &str); 4] = [
    ("first_frame", "--first-frame"),
    ("last_frame", "--last-frame"),
    ("reference_image", "--reference"),
    ("input_video", "--input-video"),
];

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
    let bindings = &workflow.manifest.bindings;
    let bound = |role: &str| match role {
        "first_frame" => !bindings.first_frame.is_empty(),
        "last_frame" => !bindings.last_frame.is_empty(),
        "reference_image" => !bindings.reference_image.is_empty(),
        "input_video" => !bindings.input_video.is_empty(),
        _ => false,
    };
    for (role, flag) in INPUT_ROLES {
        let given = request.inputs.contains_key(role);
        if bound(role) && !given {
            let kind = if role == "input_video" {
                "a video file"
            } else {
                "an image file"
            };
            return Err(format!(
                "workflow '{}' needs {flag}: {kind}, a blob hash, or 'take' (each shot's latest take)",
                request.workflow
            ));
        }
        if given && !bound(role) {
            return Err(format!("workflow '{}' takes no {flag}", request.workflow));
        }
    }
    if let Some(role) = request
        .inputs
        .keys()
        .find(|r| !INPUT_ROLES.iter().any(|(known, _)| known == r))
    {
        return Err(format!("unknown input '{role}'"));
    }
    let takes = doc.takes().map_err(|e| e.to_string())?;
    let takes_loras = workflow.manifest.bindings.lora_chain.is_some();
    let mut jobs = Vec::with_capacity(shots.len());
    for shot in shots {
        let seed = request.seed.unwrap_or_else(random_seed);
        let mut job = Job::new(&shot.shot_id, &request.workflow, seed, created_by, now_ms);
        job.priority = request.priority;
        if let Some(secs) = request.deadline_secs {
            job.deadline_ms = now_ms.saturating_add(secs.saturating_mul(1000));
        }
        job.prompt = shot_prompt(&project, shot).text;
        job.frames = clip_frames(
            &workflow.manifest,
            project.settings.frame_rate,
            shot.frame_count,
        );
        job.work = estimate_work(&workflow.manifest, &job);
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
        for (role, source) in &request.inputs {
            let hash = if source == "take" {
                latest_take(&takes, &shot.shot_id, role == "input_video")
                    .map(|t| t.blob.clone())
                    .ok_or_else(|| {
                        let kind = if role == "input_video" {
                            "clip"
                        } else {
                            "still"
                        };
                        format!(
                            "{}: no {kind} take to use as {role} (render one first)",
                            shot.code
                        )
                    })?
            } else if source.len() == 64 && source.bytes().all(|b| b.is_ascii_hexdigit()) {
                source.to_ascii_lowercase()
            } else {
                return Err(format!(
                    "{role}: '{source}' is neither a blob hash nor 'take'"
                ));
            };
            job.inputs.insert(role.clone(), hash);
        }
        jobs.push((job, shot.code));
    }
    let new_jobs: Vec<Job> = jobs.iter().map(|(job, _)| job.clone()).collect();
    doc.add_jobs(&new_jobs).map_err(|e| e.to_string())?;
    let queued = jobs
        .into_iter()
        .map(|(job, code)| Queued {
            job_id: job.job_id,
            shot_code: code.to_string(),
        })
        .collect();
    Ok(queued)
}

/// The still a shot shows: its selected take when that is an image, else its
/// latest image.
fn shown_still<'a>(takes: &'a [Take], shot: &Shot) -> Option<&'a Take> {
    takes
        .iter()
        .find(|t| {
            !shot.selected_take.is_empty()
                && t.take_id == shot.selected_take
                && t.media == TakeMedia::Image
        })
        .or_else(|| latest_take(takes, &shot.shot_id, false))
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The workflows a video batch chains, checked: `--stills-first` makes a still,
/// each `--then` takes a clip.
///
/// # Errors
/// An unknown workflow, or one that does not fit its place, named.
pub fn check_batch<'c>(
    catalog: &'c Catalog,
    batch: &reelmesh_protocol::api::render::VideoBatch,
) -> Result<
    (
        Option<&'c crate::workflows::Workflow>,
        Vec<&'c crate::workflows::Workflow>,
    ),
    String,
> {
    let still_workflow = match &batch.stills_first {
        Some(id) => {
            let workflow = catalog
                .get(id)
                .ok_or_else(|| format!("--stills-first: unknown workflow '{id}'"))?;
            if workflow.manifest.output != OutputKind::Image {
                return Err(format!("--stills-first: '{id}' makes no still"));
            }
            Some(workflow)
        }
        None => None,
    };
    let mut post = Vec::new();
    for id in &batch.then {
        let workflow = catalog
            .get(id)
            .ok_or_else(|| format!("--then: unknown workflow '{id}'"))?;
        if workflow.manifest.bindings.input_video.is_empty() {
            return Err(format!(
                "--then: '{id}' takes no clip (a post step must take the clip as its input video)"
            ));
        }
        post.push(workflow);
    }
    Ok((still_workflow, post))
}

/// What a video batch queued, and the shots it refused with why.
pub type VideoQueued = (Vec<Queued>, Vec<(String, String)>);

/// The video batch: each selected shot renders its own workflow (its accepted
/// advice) with the inputs the timeline gives it: its still as the first frame,
/// the next shot's still as the last frame, its style reference, its clip as the
/// driving video; the clip's length from the shot. A shot without a still renders
/// one first with `stills_first` (a chain: the clip is queued when the still is
/// done), else it is refused with the reason. `then` chains post steps after each
/// clip. Returns what was queued and what was refused.
pub fn queue_video(
    doc: &mut ProjectDoc,
    catalog: &Catalog,
    request: &RenderRequest,
    created_by: &str,
    now_ms: u64,
) -> Result<VideoQueued, String> {
    let batch = request.video.clone().unwrap_or_default();
    let project = doc.project().map_err(|e| e.to_string())?;
    let shots = select_shots(&project, &request.shots)?;
    let takes = doc.takes().map_err(|e| e.to_string())?;
    let (still_workflow, post) = check_batch(catalog, &batch)?;
    let rate = project.settings.frame_rate;
    let mut jobs: Vec<Job> = Vec::new();
    let mut queued = Vec::new();
    let mut refused = Vec::new();
    for shot in shots {
        match plan_video(&project, shot, &takes, catalog, still_workflow, &post, rate) {
            Ok(mut job) => {
                job.priority = request.priority;
                job.created_by = created_by.to_owned();
                job.created_at_ms = now_ms;
                job.deadline_ms = now_ms.saturating_add(
                    request
                        .deadline_secs
                        .map_or(reelmesh_protocol::jobs::DEFAULT_DEADLINE_MS, |s| {
                            s.saturating_mul(1000)
                        }),
                );
                if let Some(seed) = request.seed {
                    job.seed = seed;
                }
                queued.push(Queued {
                    job_id: job.job_id.clone(),
                    shot_code: shot.code.to_string(),
                });
                jobs.push(job);
            }
            Err(why) => refused.push((shot.code.to_string(), why)),
        }
    }
    if !jobs.is_empty() {
        doc.add_jobs(&jobs).map_err(|e| e.to_string())?;
    }
    Ok((queued, refused))
}

/// One shot's job for the video batch (the still first when it has none and
/// `still_workflow` is given), or why it cannot be queued.
fn plan_video(
    project: &Project,
    shot: &Shot,
    takes: &[Take],
    catalog: &Catalog,
    still_workflow: Option<&crate::workflows::Workflow>,
    post: &[&crate::workflows::Workflow],
    rate: FrameRate,
) -> Result<Job, String> {
    let id = shot.workflow.trim();
    if id.is_empty() {
        return Err(
            "no workflow chosen: accept the advice (`reelmesh advise --accept`) or set one".into(),
        );
    }
    let workflow = catalog
        .get(id)
        .ok_or_else(|| format!("its workflow '{id}' is not in the catalog"))?;
    let manifest = &workflow.manifest;
    if manifest.kind == crate::workflows::WorkflowKind::TextToImage {
        return Err(format!("its workflow '{id}' makes a still, not a clip"));
    }
    let bindings = &manifest.bindings;
    let prompt = shot_prompt(project, shot).text;
    let mut inputs = std::collections::BTreeMap::new();
    if !bindings.last_frame.is_empty() {
        let index = project.shots.iter().position(|s| s.shot_id == shot.shot_id);
        let next = index
            .and_then(|i| project.shots.get(i + 1))
            .ok_or_else(|| {
                format!("'{id}' ends on the next shot's still, and this is the last shot")
            })?;
        let still = shown_still(takes, next).ok_or_else(|| {
            format!(
                "'{id}' ends on the next shot's still, and {} has none (storyboard cards are not stills): render it first",
                next.code
            )
        })?;
        inputs.insert("last_frame".to_owned(), still.blob.clone());
    }
    if !bindings.reference_image.is_empty() {
        let reference = shot
            .reference_images
            .iter()
            .find(|r| is_hash(r))
            .ok_or_else(|| {
                format!(
                    "'{id}' needs a style reference: add an image to the shot's reference images"
                )
            })?;
        inputs.insert("reference_image".to_owned(), reference.to_ascii_lowercase());
    }
    if !bindings.input_video.is_empty() {
        let clip = latest_take(takes, &shot.shot_id, true).ok_or_else(|| {
            format!("'{id}' needs a driving video: render or add a clip of the shot first")
        })?;
        inputs.insert("input_video".to_owned(), clip.blob.clone());
    }
    let frames = clip_frames(manifest, rate, shot.frame_count);
    let loras = lora_strengths(project, shot, manifest);
    let mut clip = Job::new(&shot.shot_id, id, random_seed(), "", 0);
    clip.prompt.clone_from(&prompt);
    clip.frames = frames;
    clip.loras = loras;
    clip.work = estimate_work(manifest, &clip);
    // Post steps take a clip: they follow workflows that make one.
    let post = if manifest.output == OutputKind::Video {
        post
    } else {
        &[]
    };
    let post_steps: Vec<reelmesh_protocol::jobs::Step> = post
        .iter()
        .map(|w| reelmesh_protocol::jobs::Step {
            workflow: w.manifest.id.clone(),
            role: "input_video".into(),
            inputs: std::collections::BTreeMap::new(),
            prompt: prompt.clone(),
            frames: 0,
            work: clip.work,
        })
        .collect();
    if bindings.first_frame.is_empty() {
        clip.inputs = inputs;
        clip.then = post_steps;
        return Ok(clip);
    }
    if let Some(still) = shown_still(takes, shot) {
        inputs.insert("first_frame".to_owned(), still.blob.clone());
        clip.inputs = inputs;
        clip.then = post_steps;
        return Ok(clip);
    }
    let Some(still_workflow) = still_workflow else {
        let only_cards = takes
            .iter()
            .any(|t| t.shot_id == shot.shot_id && t.media == TakeMedia::Card);
        return Err(format!(
            "'{id}' starts from the shot's still and it has {}: render one first (flux_basic), or pass --stills-first",
            if only_cards {
                "only storyboard cards"
            } else {
                "none"
            }
        ));
    };
    // The still first; the clip follows it with the still as its first frame.
    let mut still = Job::new(
        &shot.shot_id,
        &still_workflow.manifest.id,
        random_seed(),
        "",
        0,
    );
    still.prompt.clone_from(&prompt);
    still.loras = lora_strengths(project, shot, &still_workflow.manifest);
    still.work = estimate_work(&still_workflow.manifest, &still);
    still.then = std::iter::once(reelmesh_protocol::jobs::Step {
        workflow: id.to_owned(),
        role: "first_frame".into(),
        inputs,
        prompt,
        frames,
        work: clip.work,
    })
    .chain(post_steps)
    .collect();
    Ok(still)
}

/// The LoRAs of the shot's characters, for a workflow that chains LoRAs.
fn lora_strengths(
    project: &Project,
    shot: &Shot,
    manifest: &Manifest,
) -> std::collections::BTreeMap<String, f64> {
    let mut loras = std::collections::BTreeMap::new();
    if manifest.bindings.lora_chain.is_none() {
        return loras;
    }
    for character in shot
        .characters
        .iter()
        .filter_map(|id| project.character(id))
    {
        if !character.lora_path.trim().is_empty() {
            loras.insert(
                character.lora_path.trim().to_owned(),
                character.lora_strength,
            );
        }
    }
    loras
}

/// How many frames a clip of the shot renders: the shot's length at the workflow's
/// frame rate, at most the workflow's default (the length its model is made for: a
/// 2 s shot gets a 2 s clip, not a 5 s one that costs 2.5× the GPU time). 0 (the
/// workflow's default) for workflows that make no clip or bind no length.
#[must_use]
pub fn clip_frames(manifest: &Manifest, rate: FrameRate, shot_frames: u64) -> u64 {
    let Some(most) = manifest.defaults.frames else {
        return 0;
    };
    if manifest.output != OutputKind::Video
        || manifest.bindings.frames.is_empty()
        || shot_frames == 0
    {
        return 0;
    }
    let seconds = rate.frames_to_seconds(shot_frames);
    let fps = manifest
        .defaults
        .fps
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or_else(|| shot_frames as f64 / seconds.max(1e-9));
    // A clip length in 1..=most: a u32 default bounds it.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let frames = (seconds * fps).ceil().clamp(1.0, f64::from(most)) as u64;
    frames
}

/// A job's estimated cost in work units: output megapixels × sampler steps × frames
/// (each from the job, else the workflow's defaults, else 1). Only its ratios
/// matter: each node measures its own time per unit of each workflow, so a 121-frame
/// clip weighs 121 times a still of the same size and steps.
#[must_use]
pub fn estimate_work(manifest: &Manifest, job: &Job) -> f64 {
    let d = &manifest.defaults;
    let side = |job: u64, default: Option<u32>| {
        if job > 0 {
            job as f64
        } else {
            default.map_or(1000.0, f64::from)
        }
    };
    let megapixels = side(job.width, d.width) * side(job.height, d.height) / 1e6;
    let steps = d.steps.map_or(1.0, |s| f64::from(s.max(1)));
    let frames = if job.frames > 0 {
        job.frames as f64
    } else if manifest.output == OutputKind::Video {
        d.frames.map_or(1.0, |f| f64::from(f.max(1)))
    } else {
        1.0
    };
    megapixels * steps * frames
}

/// The shot's newest take from a model (a card is a placeholder, never an input to
/// a model): a still, or a clip when `video`.
fn latest_take<'a>(takes: &'a [Take], shot_id: &str, video: bool) -> Option<&'a Take> {
    takes
        .iter()
        .filter(|t| t.shot_id == shot_id)
        .filter(|t| {
            if video {
                t.media == TakeMedia::Video
            } else {
                t.media == TakeMedia::Image
            }
        })
        .max_by_key(|t| (t.finished_at_ms, t.take_id.clone()))
}

/// A seed ComfyUI samplers accept (they take 0 ..= 2^64-1; keep to 2^53 so the value
/// survives any JSON reader).
fn random_seed() -> u64 {
    rand::random::<u64>() & ((1_u64 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
            inputs: BTreeMap::new(),
            deadline_secs: Some(60),
            video: None,
        };
        let queued = queue_render(&mut doc, &catalog, &request, "me", 100).expect("queue");
        assert_eq!(queued.len(), 2);
        let jobs = doc.jobs().expect("jobs");
        // The deadline counts from the moment they were queued.
        assert!(
            jobs.iter().all(|j| j.deadline_ms == 100 + 60_000),
            "{jobs:?}"
        );
        assert!(
            jobs.iter()
                .all(|j| j.seed == 7 && j.priority == 2 && j.created_by == "me")
        );
        assert!(jobs.iter().all(|j| !j.prompt.is_empty()));
        // Queued is not generating: nothing runs until a node claims a job.
        let project = doc.project().expect("read");
        assert!(
            project
                .shots
                .iter()
                .all(|s| s.status == reelmesh_protocol::model::ShotStatus::Pending)
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

    #[test]
    fn input_images_are_required_where_bound_and_resolved_from_takes() {
        let mut doc = doc_with(&[1, 2]);
        let catalog = Catalog::builtin();
        let mut request = RenderRequest {
            shots: "1..2".into(),
            workflow: "ltx2".into(),
            seed: None,
            priority: 0,
            inputs: BTreeMap::new(),
            deadline_secs: None,
            video: None,
        };
        let err = queue_render(&mut doc, &catalog, &request, "me", 1).expect_err("needs a frame");
        assert!(err.contains("--first-frame"), "{err}");
        request.inputs.insert("last_frame".into(), "take".into());
        request.inputs.insert("first_frame".into(), "take".into());
        let err = queue_render(&mut doc, &catalog, &request, "me", 1).expect_err("no last frame");
        assert!(err.contains("takes no --last-frame"), "{err}");
        request.inputs.remove("last_frame");
        // No still yet: say which shot.
        let err = queue_render(&mut doc, &catalog, &request, "me", 1).expect_err("no take");
        assert!(err.contains("SHT-00001") && err.contains("still"), "{err}");

        // Give shot 1 a card and a still, shot 2 a still: the still is used.
        let project = doc.project().expect("read");
        for (i, shot) in project.shots.iter().enumerate() {
            let mut job = Job::new(&shot.shot_id, "flux_basic", 1, "me", 1);
            doc.add_job(&job).expect("job");
            for (media, byte) in [
                (TakeMedia::Card, 'a'),
                (TakeMedia::Image, char::from(b'b' + i as u8)),
            ] {
                let take = Take {
                    take_id: reelmesh_protocol::model::new_record_id(),
                    shot_id: shot.shot_id.clone(),
                    job_id: job.job_id.clone(),
                    blob: byte.to_string().repeat(64),
                    media,
                    extension: "png".into(),
                    size: 1,
                    width: 1,
                    height: 1,
                    frames: 1,
                    fps: 0.0,
                    duration_ms: 0,
                    workflow: "flux_basic".into(),
                    seed: 1,
                    prompt: String::new(),
                    node_id: "me".into(),
                    host: "h".into(),
                    started_at_ms: 1,
                    finished_at_ms: if media == TakeMedia::Card { 9 } else { 5 },
                    render_ms: 1,
                    cached: false,
                };
                doc.add_take(&take).expect("take");
            }
            job.state = reelmesh_protocol::jobs::JobState::Failed;
            doc.update_job(&job).expect("end");
        }
        let queued = queue_render(&mut doc, &catalog, &request, "me", 2).expect("queue");
        let jobs = doc.jobs().expect("jobs");
        for (i, q) in queued.iter().enumerate() {
            let job = jobs.iter().find(|j| j.job_id == q.job_id).expect("job");
            let expected = char::from(b'b' + i as u8).to_string().repeat(64);
            assert_eq!(job.inputs.get("first_frame"), Some(&expected));
        }
    }

    #[test]
    fn a_clip_is_as_long_as_its_shot_up_to_the_workflows_length_and_work_follows() {
        let catalog = Catalog::builtin();
        let manifest = |id: &str| catalog.get(id).expect(id).manifest.clone();
        let (ltx, fflf, flux) = (manifest("ltx2"), manifest("fflf"), manifest("flux_basic"));
        // LTX-2 runs at 24 fps, 121 frames at most; FFLF (Wan) at 16 fps, 81.
        assert_eq!(clip_frames(&ltx, FrameRate::Fps24, 48), 48);
        assert_eq!(clip_frames(&ltx, FrameRate::Fps24, 600), 121);
        assert_eq!(clip_frames(&fflf, FrameRate::Fps24, 48), 32); // 2 s at 16 fps
        assert_eq!(clip_frames(&fflf, FrameRate::Fps25, 50), 32);
        assert_eq!(clip_frames(&fflf, FrameRate::Fps24, 1), 1);
        // Stills make no clip; a shot of no length takes the workflow's default.
        assert_eq!(clip_frames(&flux, FrameRate::Fps24, 48), 0);
        assert_eq!(clip_frames(&ltx, FrameRate::Fps24, 0), 0);

        // Work: megapixels × steps × frames, the job's where set.
        let mut job = Job::new("s", "ltx2", 1, "me", 1);
        let full = estimate_work(&ltx, &job); // 1280×704, 30 steps, 121 frames
        assert!((full - 1.280 * 0.704 * 30.0 * 121.0).abs() < 1e-6, "{full}");
        job.frames = 48;
        let short = estimate_work(&ltx, &job);
        assert!((short * 121.0 / 48.0 - full).abs() < 1e-6, "{short}");
        let still = estimate_work(&flux, &Job::new("s", "flux_basic", 1, "me", 1));
        assert!((still - 1.344 * 0.768 * 20.0).abs() < 1e-6, "{still}");

        // Queueing records both: a 2 s shot and a 10 s shot on LTX-2.
        let mut doc = doc_with(&[1, 2]);
        let mut project = doc.project().expect("read");
        project.shots[1].frame_count = 240;
        doc.update_shot(&project.shots[1]).expect("length");
        let request = RenderRequest {
            shots: "all".into(),
            workflow: "ltx2".into(),
            seed: None,
            priority: 0,
            inputs: BTreeMap::from([("first_frame".into(), "ab".repeat(32))]),
            deadline_secs: None,
            video: None,
        };
        queue_render(&mut doc, &catalog, &request, "me", 1).expect("queue");
        let mut jobs = doc.jobs().expect("jobs");
        jobs.sort_by_key(|j| j.frames);
        let frames: Vec<u64> = jobs.iter().map(|j| j.frames).collect();
        assert_eq!(frames, [24, 121]);
        assert!((jobs[1].work / jobs[0].work - 121.0 / 24.0).abs() < 1e-9);
    }
}
