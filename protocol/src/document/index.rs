//! What changed in the document, read from Automerge's patch log instead of by
//! scanning: which jobs changed (for the job runner), which jobs and takes each shot
//! has (for shot statuses), and whether a merge touched shot codes (so the code
//! rule runs only then). Built once from the whole document, then kept up to date
//! from the patches of every later change, local or merged, so the cost of a look
//! is the size of what changed, not of the project.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{PatchAction, Prop, ROOT, ReadDoc};

use super::{DocError, ProjectDoc};

/// The index (see the module docs).
#[derive(Debug, Default)]
pub(super) struct ChangeIndex {
    /// Job ids by shot (a job's shot never changes).
    pub(super) shot_jobs: HashMap<String, BTreeSet<String>>,
    /// Shots with at least one take (takes are never removed).
    pub(super) shots_with_takes: HashSet<String>,
    /// Jobs changed since the job runner last asked.
    pub(super) changed_jobs: BTreeSet<String>,
    /// The job runner has read every job once; from then on it reads changes.
    pub(super) jobs_read: bool,
}

impl ProjectDoc {
    /// Bring the index up to date with every change so far (building it on the first
    /// call). Returns whether shot codes may have changed (always on the first call).
    /// Call it between edits, never inside one: it closes the open transaction.
    pub(super) fn absorb(&mut self) -> Result<bool, DocError> {
        let Some(mut index) = self.index.take() else {
            if self.doc.get_heads().is_empty() {
                // An empty replica: nothing to index yet.
                return Ok(true);
            }
            self.doc.update_diff_cursor();
            let index = self.build_index()?;
            self.index = Some(index);
            return Ok(true);
        };
        let patches = self.doc.diff_incremental();
        let result = self.absorb_patches(&mut index, &patches);
        self.index = Some(index);
        result
    }

    fn build_index(&self) -> Result<ChangeIndex, DocError> {
        let mut index = ChangeIndex::default();
        if let Some((automerge::Value::Object(_), jobs)) = self.doc.get(ROOT, "jobs")? {
            let keys: Vec<String> = self.doc.keys(&jobs).collect();
            for job_id in keys {
                let shot = self.child_str(&jobs, &job_id, "shot_id")?;
                index.shot_jobs.entry(shot).or_default().insert(job_id);
            }
        }
        if let Some((automerge::Value::Object(_), takes)) = self.doc.get(ROOT, "takes")? {
            let keys: Vec<String> = self.doc.keys(&takes).collect();
            for take_id in keys {
                index
                    .shots_with_takes
                    .insert(self.child_str(&takes, &take_id, "shot_id")?);
            }
        }
        Ok(index)
    }

    fn absorb_patches(
        &self,
        index: &mut ChangeIndex,
        patches: &[automerge::Patch],
    ) -> Result<bool, DocError> {
        let top = |key: &str| match self.doc.get(ROOT, key) {
            Ok(Some((automerge::Value::Object(_), id))) => Some(id),
            _ => None,
        };
        let (jobs, takes, shots) = (top("jobs"), top("takes"), top("shots"));
        let mut codes = false;
        for patch in patches {
            let put_key = match &patch.action {
                PatchAction::PutMap { key, .. } => Some(key.as_str()),
                _ => None,
            };
            // The record a patch is in: the child of `table` on its path, or the key
            // put on `table` itself (a new record).
            let record_in = |table: &Option<automerge::ObjId>| -> Option<String> {
                let table = table.as_ref()?;
                if patch.obj == *table {
                    return put_key.map(str::to_owned);
                }
                patch.path.iter().find_map(|(obj, prop)| match prop {
                    Prop::Map(key) if obj == table => Some(key.clone()),
                    _ => None,
                })
            };
            if let Some(job_id) = record_in(&jobs) {
                if jobs.as_ref() == Some(&patch.obj)
                    && let Some(table) = &jobs
                {
                    let shot = self.child_str(table, &job_id, "shot_id")?;
                    index
                        .shot_jobs
                        .entry(shot)
                        .or_default()
                        .insert(job_id.clone());
                }
                index.changed_jobs.insert(job_id);
            } else if let (Some(table), Some(take_id)) = (&takes, record_in(&takes)) {
                if patch.obj == *table {
                    index
                        .shots_with_takes
                        .insert(self.child_str(table, &take_id, "shot_id")?);
                }
            } else if record_in(&shots).is_some()
                && (shots.as_ref() == Some(&patch.obj) || put_key == Some("code"))
            {
                codes = true;
            } else if patch.obj == ROOT && matches!(put_key, Some("shots" | "jobs" | "takes")) {
                // A top map appeared (the first sync of a replica): index it whole,
                // and every job in it is news to the runner.
                let mut fresh = self.build_index()?;
                fresh.changed_jobs = std::mem::take(&mut index.changed_jobs);
                fresh
                    .changed_jobs
                    .extend(fresh.shot_jobs.values().flatten().cloned());
                fresh.jobs_read = index.jobs_read;
                *index = fresh;
                codes = true;
            }
        }
        Ok(codes)
    }

    /// A text field of a record in a table (empty when missing).
    fn child_str(
        &self,
        table: &automerge::ObjId,
        record_id: &str,
        field: &str,
    ) -> Result<String, DocError> {
        match self.doc.get(table, record_id)? {
            Some((automerge::Value::Object(_), obj)) => self.scalar_str(&obj, field),
            _ => Ok(String::new()),
        }
    }
}
