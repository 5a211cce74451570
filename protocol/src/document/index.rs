//! What changed in the document, read from the new changes themselves instead of by
//! scanning: which jobs changed (for the job runner), which jobs and takes each shot
//! has (for shot statuses), and whether a change touched shot codes (so the code
//! rule runs only then). Built once from the whole document, then kept up to date by
//! decoding each later change, local or merged, and mapping the objects its
//! operations touch to the records they belong to. The cost of a look is the size
//! of what changed, not of the project. (Automerge's own patch log was the first
//! choice, but it resolves every patch's path from the root, which costs the size
//! of the parent map: 1.7 ms per change with 8,000 jobs.)

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::legacy::{ObjectId, OpType};
use automerge::{ChangeHash, ROOT, ReadDoc};

use super::{DocError, ProjectDoc};

/// What an Automerge object is, for the index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// A top map (`jobs`, `takes`, `shots`).
    Table(&'static str),
    /// A job record or a map inside it.
    Job(String),
    /// A shot record or a map inside it.
    Shot,
    /// A take record or a map inside it.
    Take,
    /// Anything else (settings, characters, ...).
    Other,
}

/// The index (see the module docs).
#[derive(Debug, Default)]
pub(super) struct ChangeIndex {
    /// Job ids by shot (a job's shot never changes).
    pub(super) shot_jobs: HashMap<String, BTreeSet<String>>,
    /// Shots with at least one take (takes are never removed).
    pub(super) shots_with_takes: HashSet<String>,
    /// Take ids by the job that made them.
    pub(super) job_takes: HashMap<String, BTreeSet<String>>,
    /// Jobs changed since the job runner last asked.
    pub(super) changed_jobs: BTreeSet<String>,
    /// The job runner has read every job once; from then on it reads changes.
    pub(super) jobs_read: bool,
    /// The document's heads when the index was last brought up to date.
    heads: Vec<ChangeHash>,
    /// Objects by id (`counter@actor`).
    objects: HashMap<String, Owner>,
}

/// What one pass over new changes found.
#[derive(Default)]
struct Found {
    codes: bool,
    rebuild: bool,
    new_jobs: Vec<String>,
    new_takes: Vec<String>,
}

impl ProjectDoc {
    /// Bring the index up to date with every change so far (building it on the first
    /// call). Returns whether shot codes may have changed (always on the first call).
    /// Call it between edits, never inside one: it closes the open transaction.
    pub(super) fn absorb(&mut self) -> Result<bool, DocError> {
        if self.one_change.is_some() {
            // Inside one change: reading the heads would close it. The index was
            // brought up to date when the change began.
            return Ok(false);
        }
        let heads = self.doc.get_heads();
        let Some(mut index) = self.index.take() else {
            if heads.is_empty() {
                // An empty replica: nothing to index yet.
                return Ok(true);
            }
            self.index = Some(self.build_index(heads)?);
            return Ok(true);
        };
        if index.heads == heads {
            self.index = Some(index);
            return Ok(false);
        }
        let mut found = Found::default();
        for change in self.doc.get_changes(&index.heads) {
            let change = change.decode();
            let actor = change.actor_id.to_hex_string();
            for (i, op) in change.operations.iter().enumerate() {
                let ObjectId::Id(obj) = &op.obj else {
                    if matches!(&op.key, automerge::legacy::Key::Map(k) if matches!(k.as_str(), "jobs" | "takes" | "shots"))
                    {
                        found.rebuild = true;
                    }
                    continue;
                };
                let key = match &op.key {
                    automerge::legacy::Key::Map(k) => k.as_str(),
                    automerge::legacy::Key::Seq(_) => "",
                };
                let obj = obj.to_string();
                let owner = match index.objects.get(&obj) {
                    Some(owner) => owner.clone(),
                    None => {
                        let owner = self.owner_of(&obj);
                        index.objects.insert(obj, owner.clone());
                        owner
                    }
                };
                let made = matches!(op.action, OpType::Make(_))
                    .then(|| format!("{}@{actor}", change.start_op.get() + i as u64));
                match owner {
                    Owner::Table("jobs") => {
                        index.changed_jobs.insert(key.to_owned());
                        if let Some(made) = made {
                            index.objects.insert(made, Owner::Job(key.to_owned()));
                            found.new_jobs.push(key.to_owned());
                        }
                    }
                    Owner::Table("takes") => {
                        if let Some(made) = made {
                            index.objects.insert(made, Owner::Take);
                            found.new_takes.push(key.to_owned());
                        }
                    }
                    Owner::Table(_) => {
                        // A new shot (or a rewritten one): codes may collide.
                        found.codes = true;
                        if let Some(made) = made {
                            index.objects.insert(made, Owner::Shot);
                        }
                    }
                    Owner::Job(job_id) => {
                        if let Some(made) = made {
                            index.objects.insert(made, Owner::Job(job_id.clone()));
                        }
                        index.changed_jobs.insert(job_id);
                    }
                    Owner::Shot => {
                        found.codes |= key == "code";
                        if let Some(made) = made {
                            index.objects.insert(made, Owner::Shot);
                        }
                    }
                    Owner::Take | Owner::Other => {
                        if let Some(made) = made {
                            index.objects.insert(made, owner);
                        }
                    }
                }
            }
        }
        if found.rebuild {
            // A top map appeared (the first sync of a replica): index it whole, and
            // every job in it is news to the runner.
            let mut fresh = self.build_index(heads)?;
            fresh.changed_jobs = std::mem::take(&mut index.changed_jobs);
            fresh
                .changed_jobs
                .extend(fresh.shot_jobs.values().flatten().cloned());
            fresh.jobs_read = index.jobs_read;
            self.index = Some(fresh);
            return Ok(true);
        }
        if let Some((automerge::Value::Object(_), jobs)) = self.doc.get(ROOT, "jobs")? {
            for job_id in found.new_jobs {
                let shot = self.child_str(&jobs, &job_id, "shot_id")?;
                index.shot_jobs.entry(shot).or_default().insert(job_id);
            }
        }
        if let Some((automerge::Value::Object(_), takes)) = self.doc.get(ROOT, "takes")? {
            for take_id in found.new_takes {
                index
                    .shots_with_takes
                    .insert(self.child_str(&takes, &take_id, "shot_id")?);
                let job = self.child_str(&takes, &take_id, "job_id")?;
                index.job_takes.entry(job).or_default().insert(take_id);
            }
        }
        index.heads = heads;
        self.index = Some(index);
        Ok(found.codes)
    }

    /// What an object not in the index is, from its path (for objects the index
    /// has not met: made before it was built, or by an operation it did not see).
    fn owner_of(&self, obj: &str) -> Owner {
        let Ok(id) = self.doc.import_obj(obj) else {
            return Owner::Other;
        };
        let Ok(parents) = self.doc.parents(&id) else {
            return Owner::Other;
        };
        let path: Vec<String> = parents.map(|p| p.prop.to_string()).collect();
        // Parents run from the object up to the root: the last is the top map.
        match path.iter().rev().map(String::as_str).collect::<Vec<_>>()[..] {
            ["jobs", job_id, ..] => Owner::Job(job_id.to_owned()),
            ["shots", _, ..] => Owner::Shot,
            ["takes", _, ..] => Owner::Take,
            _ => Owner::Other,
        }
    }

    fn build_index(&self, heads: Vec<ChangeHash>) -> Result<ChangeIndex, DocError> {
        let mut index = ChangeIndex {
            heads,
            ..ChangeIndex::default()
        };
        for table in ["jobs", "takes", "shots"] {
            let Some((automerge::Value::Object(_), parent)) = self.doc.get(ROOT, table)? else {
                continue;
            };
            index
                .objects
                .insert(parent.to_string(), Owner::Table(table));
            let keys: Vec<String> = self.doc.keys(&parent).collect();
            for key in keys {
                let Some((automerge::Value::Object(_), obj)) =
                    self.doc.get(&parent, key.as_str())?
                else {
                    continue;
                };
                let owner = match table {
                    "jobs" => {
                        let shot = self.scalar_str(&obj, "shot_id")?;
                        index.shot_jobs.entry(shot).or_default().insert(key.clone());
                        Owner::Job(key)
                    }
                    "takes" => {
                        index
                            .shots_with_takes
                            .insert(self.scalar_str(&obj, "shot_id")?);
                        index
                            .job_takes
                            .entry(self.scalar_str(&obj, "job_id")?)
                            .or_default()
                            .insert(key);
                        Owner::Take
                    }
                    _ => Owner::Shot,
                };
                // The maps inside a record (a job's loras, inputs, failures; a
                // shot's characters, references, extra columns).
                let inner: Vec<automerge::ObjId> = self
                    .doc
                    .map_range(&obj, ..)
                    .filter_map(|item| match item.value {
                        automerge::ValueRef::Object(_) => Some(item.id()),
                        automerge::ValueRef::Scalar(_) => None,
                    })
                    .collect();
                for child in inner {
                    index.objects.insert(child.to_string(), owner.clone());
                }
                index.objects.insert(obj.to_string(), owner);
            }
        }
        Ok(index)
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
