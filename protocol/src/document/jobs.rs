//! Jobs and takes in the document (`jobs` and `takes` maps, keyed by random id).
//!
//! Every write touches only the fields that changed, so a claimant writing `state`
//! and a user writing `cancel_requested` at the same time both survive the merge.
//! Takes are written once and never edited: a take is history.

use automerge::hydrate::{Map as HMap, Value as HValue};
use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};

use super::{DocError, Field, JOB_MAPS, ProjectDoc, bool_of, str_of, uint_of};
use crate::jobs::{Attempt, Job, JobState, Take, TakeMedia, shot_status_after};
use crate::model::ShotStatus;

impl ProjectDoc {
    /// Queue a job. The shot must exist and be live (see [`ProjectDoc::add_jobs`]).
    pub fn add_job(&mut self, job: &Job) -> Result<(), DocError> {
        self.add_jobs(std::slice::from_ref(job))
    }

    /// Queue several jobs in one change (their shots become `generating` only when a
    /// node claims one, see [`shot_status_after`]). Nothing is
    /// written when one job is refused (a missing or trashed shot, a bad job).
    pub fn add_jobs(&mut self, jobs: &[Job]) -> Result<(), DocError> {
        for job in jobs {
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
        }
        if let Some((automerge::Value::Object(_), parent)) = self.doc.get(ROOT, "jobs")?
            && let Some(job) = jobs
                .iter()
                .find(|j| matches!(self.doc.get(&parent, j.job_id.as_str()), Ok(Some(_))))
        {
            return Err(DocError::Invalid(format!(
                "job {} exists already",
                job.job_id
            )));
        }
        if let Err(e) = self.write_new_jobs(jobs) {
            self.doc.rollback();
            return Err(e);
        }
        self.commit("queue jobs");
        Ok(())
    }

    fn write_new_jobs(&mut self, jobs: &[Job]) -> Result<(), DocError> {
        self.ensure_job_maps()?;
        let parent = self.obj(ROOT, "jobs")?;
        for job in jobs {
            self.doc.batch_create_object(
                &parent,
                job.job_id.as_str(),
                &super::to_hydrate(&job_fields(job)),
                false,
            )?;
        }
        Ok(())
    }

    /// Write a job's changed fields (the job must exist). The move from the stored
    /// state to `job.state` must be allowed by [`JobState::can_become`].
    pub fn update_job(&mut self, job: &Job) -> Result<(), DocError> {
        self.update_jobs(std::slice::from_ref(job))
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
        self.put_record("takes", &take.take_id, &take_fields(take), "record take")?;
        if self.one_change.is_some()
            && let Some(index) = self.index.as_mut()
        {
            // Not indexed until the change closes: later edits in it (the shot's
            // status) must see it now.
            index.shots_with_takes.insert(take.shot_id.clone());
            index
                .job_takes
                .entry(take.job_id.clone())
                .or_default()
                .insert(take.take_id.clone());
        }
        Ok(())
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

    /// The takes a job made (found through the index: the cost of those takes).
    pub fn takes_for_job(&mut self, job_id: &str) -> Result<Vec<Take>, DocError> {
        self.absorb()?;
        let ids: Vec<String> = self
            .index
            .as_ref()
            .and_then(|index| index.job_takes.get(job_id))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let Some((automerge::Value::Object(_), parent)) = self.doc.get(ROOT, "takes")? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for take_id in ids {
            if let Some((automerge::Value::Object(_), obj)) =
                self.doc.get(&parent, take_id.as_str())?
                && let HValue::Map(fields) = self.doc.hydrate(&obj, None)?
            {
                out.push(read_take(&take_id, &fields));
            }
        }
        out.sort_by(|a, b| (a.finished_at_ms, &a.take_id).cmp(&(b.finished_at_ms, &b.take_id)));
        Ok(out)
    }

    /// The takes of one shot, oldest first.
    pub fn takes_for_shot(&self, shot_id: &str) -> Result<Vec<Take>, DocError> {
        let mut takes = self.takes()?;
        takes.retain(|t| t.shot_id == shot_id);
        Ok(takes)
    }

    /// Write several jobs' changed fields in one change (each must exist and each
    /// move must be allowed by [`JobState::can_become`]); the shots of jobs that
    /// were claimed, given back or ended move their status to match. Nothing is
    /// written when one job is refused.
    pub fn update_jobs(&mut self, jobs: &[Job]) -> Result<(), DocError> {
        self.absorb()?;
        let mut objs = Vec::with_capacity(jobs.len());
        // Only a job whose state moves can move its shot's status.
        let mut moved = std::collections::BTreeSet::new();
        for job in jobs {
            validate_job(job)?;
            let obj = self.record("jobs", "job", &job.job_id)?;
            let stored: JobState = match self.doc.get(&obj, "state")? {
                Some((automerge::Value::Scalar(v), _)) => match v.as_ref() {
                    ScalarValue::Str(s) => s.parse().unwrap_or(JobState::Failed),
                    _ => JobState::Failed,
                },
                _ => JobState::Failed,
            };
            if stored != job.state && !stored.can_become(job.state) {
                return Err(DocError::Invalid(format!(
                    "job {}: cannot go from {stored} to {}",
                    job.job_id, job.state
                )));
            }
            if stored != job.state {
                moved.insert(job.shot_id.clone());
            }
            objs.push(obj);
        }
        for (job, obj) in jobs.iter().zip(&objs) {
            self.write_fields(obj, &job_fields(job))?;
        }
        if !moved.is_empty() {
            self.refresh_shot_statuses(&moved)?;
        }
        self.commit("update jobs");
        Ok(())
    }

    /// Jobs changed since the last call, as they are now: `None` on the first call
    /// (read every job then), after which the document keeps an index of its changes
    /// so each later call costs what changed, not the size of the queue. One reader
    /// per document (the job runner).
    pub fn jobs_changed(&mut self) -> Result<Option<Vec<Job>>, DocError> {
        self.absorb()?;
        let Some(index) = self.index.as_mut() else {
            return Ok(None);
        };
        if !index.jobs_read {
            index.jobs_read = true;
            index.changed_jobs.clear();
            return Ok(None);
        }
        let ids = std::mem::take(&mut index.changed_jobs);
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.job(&id) {
                Ok(job) => jobs.push(job),
                Err(DocError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(jobs))
    }

    /// Move the shot's status to what its jobs and takes say (see
    /// [`shot_status_after`]); returns the new status. Writes only on a change.
    pub fn refresh_shot_status(&mut self, shot_id: &str) -> Result<ShotStatus, DocError> {
        self.absorb()?;
        let shots = std::collections::BTreeSet::from([shot_id.to_owned()]);
        let statuses = self.refresh_shot_statuses(&shots)?;
        if !statuses.is_empty() {
            self.commit("shot status follows its jobs");
        }
        let obj = self.record("shots", "shot", shot_id)?;
        self.shot_status_of(&obj)
    }

    /// Move each of `shots` to the status its jobs and takes say, reading only the
    /// `state` of the jobs of those shots (found through the index, so the cost is
    /// theirs, not the queue's). The index must be current: call
    /// [`ProjectDoc::absorb`] before the edit began. Returns the shots whose status
    /// changed; does not commit.
    fn refresh_shot_statuses(
        &mut self,
        shots: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>, DocError> {
        let mut changed = Vec::new();
        let Some(index) = self.index.as_ref() else {
            return Ok(changed);
        };
        let jobs_obj = match self.doc.get(ROOT, "jobs")? {
            Some((automerge::Value::Object(_), id)) => Some(id),
            _ => None,
        };
        let mut next_statuses = Vec::with_capacity(shots.len());
        for shot_id in shots {
            let mut active = false;
            if let (Some(jobs_obj), Some(job_ids)) = (&jobs_obj, index.shot_jobs.get(shot_id)) {
                for job_id in job_ids {
                    if let Some((automerge::Value::Object(_), obj)) =
                        self.doc.get(jobs_obj, job_id.as_str())?
                        && self
                            .scalar_str(&obj, "state")?
                            .parse::<JobState>()
                            .is_ok_and(JobState::is_held)
                    {
                        active = true;
                        break;
                    }
                }
            }
            let taken = index.shots_with_takes.contains(shot_id);
            next_statuses.push((shot_id, active, taken));
        }
        for (shot_id, active, taken) in next_statuses {
            let obj = self.record("shots", "shot", shot_id)?;
            let current = self.shot_status_of(&obj)?;
            let next = shot_status_after(current, active, taken);
            if next != current {
                self.doc.put(&obj, "status", next.as_str())?;
                changed.push(shot_id.clone());
            }
        }
        Ok(changed)
    }

    /// Every value a job's text field holds right now: one normally, several after
    /// concurrent writes merged (until the next write overwrites them). The merged
    /// winner (what [`ProjectDoc::job`] reads) is one of them. Used on `claimant` and
    /// `state` to see that two nodes claimed, or that another node already ended
    /// the job while this one claimed it.
    pub fn job_field_values(&self, job_id: &str, field: &str) -> Result<Vec<String>, DocError> {
        let obj = self.record("jobs", "job", job_id)?;
        let mut out: Vec<String> = self
            .doc
            .get_all(&obj, field)?
            .into_iter()
            .filter_map(|(value, _)| match value {
                automerge::Value::Scalar(v) => match v.as_ref() {
                    ScalarValue::Str(s) if !s.is_empty() => Some(s.to_string()),
                    _ => None,
                },
                automerge::Value::Object(_) => None,
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// A shot's code (`None` when the shot is not in the project).
    pub fn shot_code(&self, shot_id: &str) -> Option<crate::model::ShotCode> {
        let obj = self.record("shots", "shot", shot_id).ok()?;
        match self.doc.get(&obj, "code").ok()?? {
            (automerge::Value::Scalar(v), _) => match v.as_ref() {
                ScalarValue::Uint(n) => Some(crate::model::ShotCode(*n)),
                ScalarValue::Int(n) => u64::try_from(*n).ok().map(crate::model::ShotCode),
                _ => None,
            },
            _ => None,
        }
    }

    fn shot_status_of(&self, shot: &automerge::ObjId) -> Result<ShotStatus, DocError> {
        Ok(self.scalar_str(shot, "status")?.parse().unwrap_or_default())
    }

    pub(super) fn scalar_str(&self, obj: &automerge::ObjId, key: &str) -> Result<String, DocError> {
        Ok(match self.doc.get(obj, key)? {
            Some((automerge::Value::Scalar(v), _)) => match v.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => String::new(),
            },
            _ => String::new(),
        })
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
    if !(job.work.is_finite() && job.work >= 0.0) {
        return Err(DocError::Invalid(format!(
            "job {}: work {} is not a finite, non-negative estimate",
            job.job_id, job.work
        )));
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
        ("work", Field::F64(job.work)),
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
        (
            "failures",
            Field::Dict(
                job.failures
                    .iter()
                    .map(|(k, v)| (k.clone(), ScalarValue::Uint(*v)))
                    .collect(),
            ),
        ),
        (
            "ruled_out",
            Field::Dict(
                job.ruled_out
                    .iter()
                    .map(|(k, v)| (k.clone(), ScalarValue::Str(v.as_str().into())))
                    .collect(),
            ),
        ),
        ("deadline_ms", Field::Uint(job.deadline_ms)),
        // Each run is one key (its start and node) holding the attempt as JSON:
        // runs recorded on two sides of a partition both survive the merge, and a
        // record is written once.
        (
            "history",
            Field::Dict(
                job.history
                    .iter()
                    .map(|a| {
                        let json = serde_json::to_string(a).unwrap_or_default();
                        (a.key(), ScalarValue::Str(json.into()))
                    })
                    .collect(),
            ),
        ),
        ("parent", Field::Str(job.parent.clone())),
        // The chain, written whole (it is set when queued and never edited).
        (
            "then",
            if job.then.is_empty() {
                Field::Absent
            } else {
                Field::Str(serde_json::to_string(&job.then).unwrap_or_default())
            },
        ),
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
        ("fps", Field::F64(take.fps)),
        ("duration_ms", Field::Uint(take.duration_ms)),
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
        failures: dict_of(f, "failures", |s| match s {
            ScalarValue::Uint(n) => Some(*n),
            ScalarValue::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }),
        // A peer's estimate is only a weight: anything not a finite, non-negative
        // number reads as unknown.
        work: Some(f64_of(f, "work")).filter(|w| *w >= 0.0).unwrap_or(0.0),
        ruled_out: dict_of(f, "ruled_out", |s| match s {
            ScalarValue::Str(x) => Some(x.to_string()),
            _ => None,
        }),
        deadline_ms: uint_of(f, "deadline_ms"),
        // A record a peer wrote that does not parse is left out, not trusted.
        history: {
            let mut history: Vec<Attempt> = dict_of(f, "history", |s| match s {
                ScalarValue::Str(x) => serde_json::from_str::<Attempt>(x).ok(),
                _ => None,
            })
            .into_values()
            .collect();
            history.sort_by_key(Attempt::key);
            history
        },
        // A chain a peer wrote that does not parse is no chain.
        then: serde_json::from_str(&str_of(f, "then")).unwrap_or_default(),
        parent: str_of(f, "parent"),
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
        fps: Some(f64_of(f, "fps")).filter(|x| *x >= 0.0).unwrap_or(0.0),
        duration_ms: uint_of(f, "duration_ms"),
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
