//! Jobs and takes in the document (`jobs` and `takes` maps, keyed by random id).
//!
//! Every write touches only the fields that changed, so a claimant writing `state`
//! and a user writing `cancel_requested` at the same time both survive the merge.
//! Takes are written once and never edited: a take is history.

use automerge::hydrate::{Map as HMap, Value as HValue};
use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};

use super::{DocError, Field, JOB_MAPS, ProjectDoc, bool_of, str_of, uint_of};
use crate::jobs::{Job, JobState, Take, TakeMedia, shot_status_after};
use crate::model::ShotStatus;

impl ProjectDoc {
    /// Queue a job. The shot must exist and be live.
    pub fn add_job(&mut self, job: &Job) -> Result<(), DocError> {
        validate_job(job)?;
        let shot = self.record("shots", "shot", &job.shot_id)?;
        if matches!(
            self.doc.get(&shot, "deleted")?,
            Some((automerge::Value::Scalar(v), _)) if matches!(v.as_ref(), ScalarValue::Boolean(true))
        ) {
            return Err(DocError::Invalid(format!(
                "shot {} is in the trash; restore it before rendering",
                job.shot_id
            )));
        }
        self.ensure_job_maps()?;
        self.put_record("jobs", &job.job_id, &job_fields(job), "queue job")
    }

    /// Write a job's changed fields (the job must exist). The move from the stored
    /// state to `job.state` must be allowed by [`JobState::can_become`].
    pub fn update_job(&mut self, job: &Job) -> Result<(), DocError> {
        validate_job(job)?;
        let stored = self.job(&job.job_id)?;
        if stored.state != job.state && !stored.state.can_become(job.state) {
            return Err(DocError::Invalid(format!(
                "job {}: cannot go from {} to {}",
                job.job_id, stored.state, job.state
            )));
        }
        let obj = self.record("jobs", "job", &job.job_id)?;
        self.write_fields(&obj, &job_fields(job))?;
        self.commit("update job");
        Ok(())
    }

    /// Ask for a job to stop: the claimant (or anyone, for a queued job) ends it.
    pub fn request_cancel(&mut self, job_id: &str) -> Result<(), DocError> {
        let obj = self.record("jobs", "job", job_id)?;
        self.doc.put(&obj, "cancel_requested", true)?;
        self.commit("cancel job");
        Ok(())
    }

    /// One job.
    pub fn job(&self, job_id: &str) -> Result<Job, DocError> {
        let obj = self.record("jobs", "job", job_id)?;
        let HValue::Map(fields) = self.doc.hydrate(&obj, None)? else {
            return Err(DocError::Schema(format!("job {job_id} is not a map")));
        };
        Ok(read_job(job_id, &fields))
    }

    /// Every job, oldest first (ties by id).
    pub fn jobs(&self) -> Result<Vec<Job>, DocError> {
        let mut jobs: Vec<Job> = self
            .table("jobs")?
            .iter()
            .filter_map(|(id, v)| match &v.value {
                HValue::Map(f) => Some(read_job(id, f)),
                _ => None,
            })
            .collect();
        jobs.sort_by(|a, b| (a.created_at_ms, &a.job_id).cmp(&(b.created_at_ms, &b.job_id)));
        Ok(jobs)
    }

    /// Record a take (written once, never edited).
    pub fn add_take(&mut self, take: &Take) -> Result<(), DocError> {
        if take.take_id.is_empty() || take.blob.len() != 64 {
            return Err(DocError::Invalid(format!(
                "take '{}' needs an id and a 64-hex-digit blob hash",
                take.take_id
            )));
        }
        self.record("shots", "shot", &take.shot_id)?;
        self.ensure_job_maps()?;
        let parent = self.obj(ROOT, "takes")?;
        if self.doc.get(&parent, take.take_id.as_str())?.is_some() {
            return Err(DocError::Invalid(format!(
                "take {} exists already; takes are never rewritten",
                take.take_id
            )));
        }
        self.put_record("takes", &take.take_id, &take_fields(take), "record take")
    }

    /// Every take, oldest first (by end time, then id).
    pub fn takes(&self) -> Result<Vec<Take>, DocError> {
        let mut takes: Vec<Take> = self
            .table("takes")?
            .iter()
            .filter_map(|(id, v)| match &v.value {
                HValue::Map(f) => Some(read_take(id, f)),
                _ => None,
            })
            .collect();
        takes.sort_by(|a, b| (a.finished_at_ms, &a.take_id).cmp(&(b.finished_at_ms, &b.take_id)));
        Ok(takes)
    }

    /// The takes of one shot, oldest first.
    pub fn takes_for_shot(&self, shot_id: &str) -> Result<Vec<Take>, DocError> {
        let mut takes = self.takes()?;
        takes.retain(|t| t.shot_id == shot_id);
        Ok(takes)
    }

    /// Move the shot's status to what its jobs and takes say (see
    /// [`shot_status_after`]); returns the new status. Writes only on a change.
    pub fn refresh_shot_status(&mut self, shot_id: &str) -> Result<ShotStatus, DocError> {
        let obj = self.record("shots", "shot", shot_id)?;
        let current: ShotStatus = match self.doc.get(&obj, "status")? {
            Some((automerge::Value::Scalar(v), _)) => match v.as_ref() {
                ScalarValue::Str(s) => s.parse().unwrap_or_default(),
                _ => ShotStatus::Pending,
            },
            _ => ShotStatus::Pending,
        };
        let active = self
            .jobs()?
            .iter()
            .any(|j| j.shot_id == shot_id && j.state.is_active());
        let has_take = !self.takes_for_shot(shot_id)?.is_empty();
        let next = shot_status_after(current, active, has_take);
        if next != current {
            self.doc.put(&obj, "status", next.as_str())?;
            self.commit("shot status follows its jobs");
        }
        Ok(next)
    }

    /// The `jobs` / `takes` map, or an empty one in a project made before they
    /// existed.
    fn table(&self, key: &str) -> Result<HMap, DocError> {
        match self.doc.get(ROOT, key)? {
            Some((automerge::Value::Object(_), obj)) => match self.doc.hydrate(&obj, None)? {
                HValue::Map(map) => Ok(map),
                _ => Err(DocError::Schema(format!("'{key}' is not a map"))),
            },
            _ => Ok(HMap::default()),
        }
    }

    /// A project made before jobs existed gets its `jobs`/`takes` maps on its first
    /// job. Two offline peers doing that at once would hide one side's jobs (the
    /// `put_object` trap), which is why new projects make them with the skeleton.
    fn ensure_job_maps(&mut self) -> Result<(), DocError> {
        for key in JOB_MAPS {
            if self.doc.get(ROOT, key)?.is_none() {
                self.doc.put_object(ROOT, key, ObjType::Map)?;
            }
        }
        Ok(())
    }
}

fn validate_job(job: &Job) -> Result<(), DocError> {
    if job.job_id.is_empty() || job.shot_id.is_empty() || job.workflow.trim().is_empty() {
        return Err(DocError::Invalid(
            "a job needs a job_id, a shot_id and a workflow".into(),
        ));
    }
    Ok(())
}

fn job_fields(job: &Job) -> Vec<(&'static str, Field)> {
    vec![
        ("shot_id", Field::Str(job.shot_id.clone())),
        ("workflow", Field::Str(job.workflow.clone())),
        ("state", Field::Str(job.state.as_str().to_owned())),
        ("priority", Field::Int(job.priority)),
        ("attempts", Field::Uint(job.attempts)),
        ("max_attempts", Field::Uint(job.max_attempts)),
        ("error", Field::Str(job.error.clone())),
        ("seed", Field::Uint(job.seed)),
        ("prompt", Field::Str(job.prompt.clone())),
        ("negative_prompt", Field::Str(job.negative_prompt.clone())),
        ("width", Field::Uint(job.width)),
        ("height", Field::Uint(job.height)),
        ("frames", Field::Uint(job.frames)),
        ("fps", Field::F64(job.fps)),
        (
            "loras",
            Field::Dict(
                job.loras
                    .iter()
                    .map(|(k, v)| (k.clone(), ScalarValue::F64(*v)))
                    .collect(),
            ),
        ),
        (
            "inputs",
            Field::Dict(
                job.inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), ScalarValue::Str(v.as_str().into())))
                    .collect(),
            ),
        ),
        ("created_by", Field::Str(job.created_by.clone())),
        ("created_at_ms", Field::Uint(job.created_at_ms)),
        ("claimant", Field::Str(job.claimant.clone())),
        ("started_at_ms", Field::Uint(job.started_at_ms)),
        ("finished_at_ms", Field::Uint(job.finished_at_ms)),
        ("take_id", Field::Str(job.take_id.clone())),
        ("cancel_requested", Field::Bool(job.cancel_requested)),
    ]
}

fn take_fields(take: &Take) -> Vec<(&'static str, Field)> {
    vec![
        ("shot_id", Field::Str(take.shot_id.clone())),
        ("job_id", Field::Str(take.job_id.clone())),
        ("blob", Field::Str(take.blob.clone())),
        ("media", Field::Str(take.media.as_str().to_owned())),
        ("extension", Field::Str(take.extension.clone())),
        ("size", Field::Uint(take.size)),
        ("width", Field::Uint(take.width)),
        ("height", Field::Uint(take.height)),
        ("frames", Field::Uint(take.frames)),
        ("workflow", Field::Str(take.workflow.clone())),
        ("seed", Field::Uint(take.seed)),
        ("prompt", Field::Str(take.prompt.clone())),
        ("node_id", Field::Str(take.node_id.clone())),
        ("host", Field::Str(take.host.clone())),
        ("started_at_ms", Field::Uint(take.started_at_ms)),
        ("finished_at_ms", Field::Uint(take.finished_at_ms)),
        ("render_ms", Field::Uint(take.render_ms)),
        ("cached", Field::Bool(take.cached)),
    ]
}

fn int_of(map: &HMap, key: &str) -> i64 {
    match map.get(key) {
        Some(HValue::Scalar(ScalarValue::Int(n))) => *n,
        Some(HValue::Scalar(ScalarValue::Uint(n))) => i64::try_from(*n).unwrap_or(i64::MAX),
        _ => 0,
    }
}

fn f64_of(map: &HMap, key: &str) -> f64 {
    match map.get(key) {
        Some(HValue::Scalar(ScalarValue::F64(x))) if x.is_finite() => *x,
        Some(HValue::Scalar(ScalarValue::Uint(n))) => *n as f64,
        Some(HValue::Scalar(ScalarValue::Int(n))) => *n as f64,
        _ => 0.0,
    }
}

fn dict_of<T>(
    map: &HMap,
    key: &str,
    value: impl Fn(&ScalarValue) -> Option<T>,
) -> std::collections::BTreeMap<String, T> {
    match map.get(key) {
        Some(HValue::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| match &v.value {
                HValue::Scalar(s) => value(s).map(|x| (k.clone(), x)),
                _ => None,
            })
            .collect(),
        _ => std::collections::BTreeMap::new(),
    }
}

fn read_job(job_id: &str, f: &HMap) -> Job {
    Job {
        job_id: job_id.to_owned(),
        shot_id: str_of(f, "shot_id"),
        workflow: str_of(f, "workflow"),
        // An unknown state (a newer peer) reads as failed: never run it blindly.
        state: str_of(f, "state").parse().unwrap_or(JobState::Failed),
        priority: int_of(f, "priority"),
        attempts: uint_of(f, "attempts"),
        max_attempts: uint_of(f, "max_attempts"),
        error: str_of(f, "error"),
        seed: uint_of(f, "seed"),
        prompt: str_of(f, "prompt"),
        negative_prompt: str_of(f, "negative_prompt"),
        width: uint_of(f, "width"),
        height: uint_of(f, "height"),
        frames: uint_of(f, "frames"),
        fps: f64_of(f, "fps"),
        loras: dict_of(f, "loras", |s| match s {
            ScalarValue::F64(x) if x.is_finite() => Some(*x),
            _ => None,
        }),
        inputs: dict_of(f, "inputs", |s| match s {
            ScalarValue::Str(x) => Some(x.to_string()),
            _ => None,
        }),
        created_by: str_of(f, "created_by"),
        created_at_ms: uint_of(f, "created_at_ms"),
        claimant: str_of(f, "claimant"),
        started_at_ms: uint_of(f, "started_at_ms"),
        finished_at_ms: uint_of(f, "finished_at_ms"),
        take_id: str_of(f, "take_id"),
        cancel_requested: bool_of(f, "cancel_requested"),
    }
}

fn read_take(take_id: &str, f: &HMap) -> Take {
    Take {
        take_id: take_id.to_owned(),
        shot_id: str_of(f, "shot_id"),
        job_id: str_of(f, "job_id"),
        blob: str_of(f, "blob"),
        media: str_of(f, "media").parse().unwrap_or(TakeMedia::Image),
        extension: str_of(f, "extension"),
        size: uint_of(f, "size"),
        width: uint_of(f, "width"),
        height: uint_of(f, "height"),
        frames: uint_of(f, "frames"),
        workflow: str_of(f, "workflow"),
        seed: uint_of(f, "seed"),
        prompt: str_of(f, "prompt"),
        node_id: str_of(f, "node_id"),
        host: str_of(f, "host"),
        started_at_ms: uint_of(f, "started_at_ms"),
        finished_at_ms: uint_of(f, "finished_at_ms"),
        render_ms: uint_of(f, "render_ms"),
        cached: bool_of(f, "cached"),
    }
}
