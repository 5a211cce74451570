//! The video batch on a loopback mesh: a stills-only laptop queues each shot's
//! accepted workflow, and the GPU box (a stand-in that makes clips) runs them with
//! the inputs the timeline gives: its still as the first frame, the next shot's
//! still as the last frame (FFLF), its style reference (style transfer); a shot
//! without a still gets one first; the frame interpolation chained after each clip
//! runs on that clip once it exists.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::node::NodeHandle;
use reelmesh_protocol::api::edit::Edit;
use reelmesh_protocol::api::render::VideoBatch;
use reelmesh_protocol::jobs::{Job, JobState, Take, TakeMedia};
use reelmesh_protocol::model::{Advice, Project};

use crate::gpu_standin::{GpuStandIn, Ledger};
use crate::meshkit::{Setup, mesh};

const SETTLE: Duration = Duration::from_secs(60);

/// Wait (on the node's events, not a timer) until `done` holds for the project's
/// jobs and takes.
async fn until(
    handle: &NodeHandle,
    what: &str,
    done: impl Fn(&[Job], &[Take]) -> bool,
) -> (Vec<Job>, Vec<Take>) {
    let deadline = Instant::now() + SETTLE;
    let mut feed = handle.feed(256);
    loop {
        let (_, (jobs, takes)) = handle
            .read(None, |doc| {
                (
                    doc.jobs().unwrap_or_default(),
                    doc.takes().unwrap_or_default(),
                )
            })
            .await
            .expect("read");
        if done(&jobs, &takes) {
            return (jobs, takes);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, feed.recv()).await.is_ok(),
            "{what} did not happen within {SETTLE:?}: {jobs:#?}"
        );
    }
}

fn succeeded(jobs: &[Job], workflow: &str) -> usize {
    jobs.iter()
        .filter(|j| j.workflow == workflow && j.state == JobState::Succeeded)
        .count()
}

/// Storyboard cards for shots 1 to 3, a style reference (stored) on 3, and the
/// advice for each shot written and accepted as the advisor and the user would.
/// Returns the reference's hash.
async fn stills_and_accepted_advice(laptop: &NodeHandle, project_id: &str) -> String {
    let stills = jobs::queue_on(
        laptop,
        None,
        RenderRequest {
            shots: "1..3".into(),
            workflow: "card".into(),
            ..RenderRequest::default()
        },
        true,
    )
    .await
    .expect("stills");
    let ids: Vec<String> = stills.queued.iter().map(|q| q.job_id.clone()).collect();
    jobs::follow::watch_jobs(laptop, None, &ids, SETTLE, |_| {})
        .await
        .expect("cards");
    let reference = laptop
        .blob_store()
        .put("a style reference frame".as_bytes())
        .expect("blob")
        .hash
        .to_hex();
    // The advice, as the advisor writes it, then accepted in one step.
    let picks = [
        (1, "ltx2"),
        (2, "fflf"),
        (3, "telestyle"),
        (4, "ltx2"),
        (5, "fflf"),
    ];
    let reference_for_3 = reference.clone();
    laptop
        .edit(Some(project_id.to_owned()), move |doc| {
            let mut project: Project = doc.project().map_err(|e| e.to_string())?;
            for (code, workflow) in picks {
                let shot = &mut project.shots[code - 1];
                shot.advice = Some(Advice {
                    workflow: workflow.into(),
                    reason: "test".into(),
                    source: "rules".into(),
                    ..Advice::default()
                });
                if code == 3 {
                    shot.reference_images = vec![reference_for_3.clone()];
                }
                doc.update_shot(shot).map_err(|e| e.to_string())?;
            }
            reelmesh_protocol::api::edit::apply(doc, &Edit::AdviceAccept { shots: vec![] })
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .expect("advice accepted");
    reference
}

/// The video batch for every shot, stills first where missing, interpolation after
/// each clip: four shots queued, the last one (FFLF with no next shot) refused.
async fn queue_the_batch(laptop: &NodeHandle) -> Vec<String> {
    let batch = jobs::queue_on(
        laptop,
        None,
        RenderRequest {
            shots: "all".into(),
            video: Some(VideoBatch {
                stills_first: Some("flux_basic".into()),
                then: vec!["rife_interpolate".into()],
            }),
            ..RenderRequest::default()
        },
        true,
    )
    .await
    .expect("queued");
    let queued: Vec<&str> = batch.queued.iter().map(|q| q.shot_code.as_str()).collect();
    assert_eq!(queued, ["SHT-00001", "SHT-00002", "SHT-00003", "SHT-00004"]);
    assert_eq!(batch.refused.len(), 1);
    assert_eq!(batch.refused[0].0, "SHT-00005");
    assert!(
        batch.refused[0].1.contains("this is the last shot"),
        "{:?}",
        batch.refused
    );
    assert!(
        !batch.runnable_here,
        "the laptop has no GPU: the mesh runs them"
    );
    batch.queued.into_iter().map(|q| q.job_id).collect()
}

/// Who follows the batch follows its chains: the 4 jobs queued and the 4 their
/// successes queued (3 interpolations, 1 clip after its new still).
async fn follow_the_batch(laptop: &NodeHandle, ids: &[String]) {
    // Who follows the batch follows its chains: the 4 jobs queued and the 4
    // their successes queued (3 interpolations, 1 clip after its new still).
    let mut heard = std::collections::BTreeSet::new();
    let followed = jobs::follow::watch_jobs(laptop, None, ids, SETTLE, |update| {
        heard.insert(update.job_id.clone());
    })
    .await
    .expect("followed");
    assert_eq!(followed.len(), 8, "{followed:#?}");
    assert!(followed.iter().all(|j| j.state == JobState::Succeeded));
    assert_eq!(heard.len(), 8, "an update for every job, chained ones too");
    let chained: Vec<&str> = followed[4..].iter().map(|j| j.workflow.as_str()).collect();
    assert_eq!(
        chained.iter().filter(|w| **w == "rife_interpolate").count(),
        3
    );
    assert!(followed[4..].iter().all(|j| !j.parent.is_empty()));
}

#[test]
fn the_video_batch_gives_each_workflow_its_inputs_and_runs_post_steps_after_their_clips() {
    crate::logs();
    let ledger = Ledger::default();
    let gpu = GpuStandIn::new(
        "RTX 6000 Ada",
        48.0,
        &[
            "ltx2",
            "fflf",
            "telestyle",
            "flux_basic",
            "rife_interpolate",
        ],
        0,
        &ledger,
    )
    .clips();
    let slot = gpu.slot();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setup: Setup = Box::new(move |config| config.executor = Some(slot));
    let mesh = runtime.block_on(mesh(5, vec![setup]));
    let laptop = mesh.editor.handle();
    let gpu_box = mesh.workers[0].handle();
    runtime.block_on(async {
        // Five shots of 24 frames; stills (storyboard cards) for 1 to 3; a style
        // reference on 3.
        let project_id = laptop.project(None).await.expect("project").0;
        let reference = stills_and_accepted_advice(&laptop, &project_id).await;

        let ids = queue_the_batch(&laptop).await;
        follow_the_batch(&laptop, &ids).await;

        // Everything, chains included, ends on the GPU box: 4 clips (one after its
        // new still), 3 interpolations (telestyle makes a still: nothing after it).
        let (jobs, takes) = until(&gpu_box, "the whole batch", |jobs, _| {
            succeeded(jobs, "rife_interpolate") == 3
                && succeeded(jobs, "ltx2") == 2
                && succeeded(jobs, "fflf") == 1
                && succeeded(jobs, "telestyle") == 1
                && succeeded(jobs, "flux_basic") == 1
        })
        .await;
        let project = gpu_box.project(None).await.expect("project").1;
        let shot = |code: usize| project.shots[code - 1].shot_id.clone();
        let take_of = |job: &Job| -> &Take {
            takes
                .iter()
                .find(|t| t.job_id == job.job_id)
                .expect("a take per job")
        };
        let still_of = |code: usize| -> String {
            takes
                .iter()
                // The storyboard card (telestyle's restyled still came later).
                .filter(|t| t.shot_id == shot(code) && t.workflow == "card")
                .max_by_key(|t| t.finished_at_ms)
                .expect("a still")
                .blob
                .clone()
        };
        let job = |code: usize, workflow: &str| -> &Job {
            jobs.iter()
                .find(|j| j.shot_id == shot(code) && j.workflow == workflow)
                .unwrap_or_else(|| panic!("no {workflow} job for shot {code}"))
        };
        // What each run got, as the GPU saw it.
        let ran: BTreeMap<String, BTreeMap<String, String>> = ledger
            .all()
            .into_iter()
            .map(|e| (e.job_id, e.inputs))
            .collect();
        let got = |j: &Job| ran[&j.job_id].clone();
        assert_eq!(got(job(1, "ltx2"))["first_frame"], still_of(1));
        assert_eq!(got(job(1, "ltx2")).len(), 1);
        let fflf = got(job(2, "fflf"));
        assert_eq!(
            (fflf["first_frame"].as_str(), fflf["last_frame"].as_str()),
            (still_of(2).as_str(), still_of(3).as_str()),
            "FFLF: this still to the next shot's"
        );
        let styled = got(job(3, "telestyle"));
        assert_eq!(styled["reference_image"], reference);
        assert_eq!(styled["first_frame"], still_of(3));
        // Shot 4 had no still: flux_basic made one, then its clip started from it.
        let made = take_of(job(4, "flux_basic"));
        assert_eq!(got(job(4, "ltx2"))["first_frame"], made.blob);
        // The clips' lengths come from the timeline (the shot's 24 frames).
        let ltx2 = reelmesh_node::workflows::Catalog::builtin();
        let manifest = &ltx2.get("ltx2").expect("ltx2").manifest;
        assert_eq!(
            job(1, "ltx2").frames,
            jobs::queue::clip_frames(manifest, project.settings.frame_rate, 24)
        );
        assert!(job(1, "ltx2").frames > 0);
        // Each interpolation took its own shot's clip, after that clip was made.
        let executions = ledger.all();
        for code in [1, 2, 4] {
            let clip_workflow = if code == 2 { "fflf" } else { "ltx2" };
            let clip = job(code, clip_workflow);
            let clip_take = take_of(clip);
            assert_eq!(clip_take.media, TakeMedia::Video);
            let rife = job(code, "rife_interpolate");
            assert_eq!(got(rife)["input_video"], clip_take.blob, "shot {code}");
            let clip_run = executions
                .iter()
                .find(|e| e.job_id == clip.job_id)
                .expect("ran");
            let rife_run = executions
                .iter()
                .find(|e| e.job_id == rife.job_id)
                .expect("ran");
            assert!(
                rife_run.started >= clip_run.ended.expect("ended"),
                "shot {code}: the post step ran after its clip"
            );
        }
        assert!(
            jobs.iter().all(|j| j.state == JobState::Succeeded),
            "{jobs:#?}"
        );
    });
    runtime.block_on(mesh.stop());
}
