//! Following jobs until they end: what `reelmesh render` shows and waits on.
//!
//! The document says where each job is (durable); [`NodeEvent::Job`] events say how
//! far a running one got (ephemeral). Subscribing before the first read means no
//! change falls between the two. A queued job's reason for waiting comes from the
//! offers of the nodes heard from (`placement::why_waiting`), looked at again on
//! every change and every [`WAITING_EVERY`], and is told (as an update with
//! `waiting` set) whenever it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use reelmesh_protocol::jobs::{Job, JobState};
use reelmesh_protocol::placement;
use tokio::sync::broadcast;

use super::JobUpdate;
use crate::node::{NodeError, NodeEvent, NodeHandle};

/// How often the reasons queued jobs wait are looked at again, with no event.
pub const WAITING_EVERY: Duration = Duration::from_secs(1);

/// Follow these jobs of a project until every one has ended, calling `on_update`
/// for each step (including each job's state when watching starts). Returns the
/// jobs as they ended. Gives up after `timeout` of silence (no update at all).
pub async fn watch_jobs(
    handle: &NodeHandle,
    project: Option<String>,
    job_ids: &[String],
    silence_timeout: Duration,
    mut on_update: impl FnMut(&JobUpdate),
) -> Result<Vec<Job>, NodeError> {
    let mut events = handle.subscribe();
    let (project_id, mut jobs) = read_jobs(handle, project, job_ids).await?;
    // Each job's end is reported once, whichever way it is learned first.
    let mut ended: std::collections::HashSet<String> = std::collections::HashSet::new();
    for job in jobs.values() {
        on_update(&initial_update(&project_id, job));
        if !job.state.is_active() {
            ended.insert(job.job_id.clone());
        }
    }
    // The reason each queued job waits, as last told.
    let mut told: BTreeMap<String, String> = BTreeMap::new();
    let mut look = tokio::time::interval(WAITING_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        if jobs.values().all(|j| !j.state.is_active()) {
            // The jobs asked for in their order, then the chains they started.
            let mut ended: Vec<Job> = job_ids.iter().filter_map(|id| jobs.remove(id)).collect();
            let mut chained: Vec<Job> = jobs.into_values().collect();
            chained.sort_by_key(|j| (j.created_at_ms, j.job_id.clone()));
            ended.extend(chained);
            return Ok(ended);
        }
        let event = tokio::select! {
            event = events.recv() => {
                quiet_since = tokio::time::Instant::now();
                event
            }
            _ = look.tick() => {
                if quiet_since.elapsed() >= silence_timeout {
                    return Err(NodeError::Timeout(silence_timeout));
                }
                tell_waiting(handle, &project_id, &jobs, &mut told, &mut on_update).await?;
                continue;
            }
        };
        match event {
            Ok(NodeEvent::Job(update)) if jobs.contains_key(&update.job_id) => {
                if update.state.is_active() || ended.insert(update.job_id.clone()) {
                    on_update(&update);
                }
                if !update.state.is_active() {
                    // The document has the final word (error text, take).
                    let (_, fresh) = read_jobs(handle, Some(project_id.clone()), job_ids).await?;
                    announce_new(&project_id, &jobs, &fresh, &mut on_update);
                    jobs = fresh;
                }
            }
            Ok(NodeEvent::DocChanged {
                project_id: changed,
                ..
            }) if changed == project_id => {
                // Another node (or a cancel) may have ended a job.
                let (_, fresh) = read_jobs(handle, Some(project_id.clone()), job_ids).await?;
                announce_new(&project_id, &jobs, &fresh, &mut on_update);
                for (id, job) in &fresh {
                    if !job.state.is_active() && ended.insert(id.clone()) {
                        on_update(&initial_update(&project_id, job));
                    }
                }
                jobs = fresh;
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let (_, fresh) = read_jobs(handle, Some(project_id.clone()), job_ids).await?;
                jobs = fresh;
            }
            Err(broadcast::error::RecvError::Closed) => return Err(NodeError::Stopped),
        }
    }
}

/// Tell the reason each queued job waits, when it changed since last told.
async fn tell_waiting(
    handle: &NodeHandle,
    project_id: &str,
    jobs: &BTreeMap<String, Job>,
    told: &mut BTreeMap<String, String>,
    on_update: &mut impl FnMut(&JobUpdate),
) -> Result<(), NodeError> {
    told.retain(|id, _| jobs.get(id).is_some_and(|j| j.state == JobState::Queued));
    if !jobs.values().any(|j| j.state == JobState::Queued) {
        return Ok(());
    }
    let offers = handle.offers().await?;
    for job in jobs.values().filter(|j| j.state == JobState::Queued) {
        let why = placement::why_waiting(job, &offers);
        if told.get(&job.job_id) == Some(&why) {
            continue;
        }
        let mut update = initial_update(project_id, job);
        update.step = format!("waiting: {why}");
        update.waiting = Some(why.clone());
        on_update(&update);
        told.insert(job.job_id.clone(), why);
    }
    Ok(())
}

/// The jobs `job_ids` and every job their successes queued (a chain: a clip after
/// its still, an interpolation after its clip), transitively.
async fn read_jobs(
    handle: &NodeHandle,
    project: Option<String>,
    job_ids: &[String],
) -> Result<(String, BTreeMap<String, Job>), NodeError> {
    let ids = job_ids.to_vec();
    let (project_id, found) = handle
        .read(project, move |doc| {
            let mut found = ids
                .iter()
                .map(|id| doc.job(id).map(|job| (id.clone(), job)))
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map_err(|e| e.to_string())?;
            if found.values().any(|j| !j.then.is_empty()) {
                let all = doc.jobs().map_err(|e| e.to_string())?;
                loop {
                    let children: Vec<Job> = all
                        .iter()
                        .filter(|j| {
                            !j.parent.is_empty()
                                && found.contains_key(&j.parent)
                                && !found.contains_key(&j.job_id)
                        })
                        .cloned()
                        .collect();
                    if children.is_empty() {
                        break;
                    }
                    found.extend(children.into_iter().map(|j| (j.job_id.clone(), j)));
                }
            }
            Ok::<_, String>(found)
        })
        .await?;
    Ok((project_id, found.map_err(NodeError::Request)?))
}

/// A job a chain just queued: the follower hears of it as of a new job.
fn announce_new(
    project_id: &str,
    before: &BTreeMap<String, Job>,
    now: &BTreeMap<String, Job>,
    on_update: &mut impl FnMut(&JobUpdate),
) {
    for (id, job) in now {
        if !before.contains_key(id) && job.state.is_active() {
            on_update(&initial_update(project_id, job));
        }
    }
}

fn initial_update(project_id: &str, job: &Job) -> JobUpdate {
    JobUpdate {
        project_id: project_id.to_owned(),
        job_id: job.job_id.clone(),
        shot_code: String::new(),
        workflow: job.workflow.clone(),
        state: job.state,
        fraction: if job.state == JobState::Succeeded {
            1.0
        } else {
            0.0
        },
        step: job.state.to_string(),
        error: (!job.error.is_empty()).then(|| job.error.clone()),
        take_id: (!job.take_id.is_empty()).then(|| job.take_id.clone()),
        node_id: job.claimant.clone(),
        attempt: job.attempts,
        ..JobUpdate::default()
    }
}
