//! The project read again only where it changed.
//!
//! Reading a whole project walks every field of every shot: about 100 ms for
//! 10,000 shots, which an editor would pay after every keystroke of anyone on the
//! mesh. [`ProjectDoc::project_now`] keeps the project it read last with the heads
//! it read it at; the next call asks Automerge what changed between those heads and
//! now (`diff`) and reads again only the shots those patches touch. A change to
//! anything else a project is made of (settings, characters, looks, catalogs) reads
//! the whole project again (those edits are rare and the tables small); changes to
//! jobs and takes are not part of a project and cost nothing here.

use std::collections::{HashMap, HashSet};

use automerge::{ChangeHash, ObjId, Prop, ROOT, ReadDoc, Value};

use super::{DocError, ProjectDoc, read};
use crate::model::Project;

/// More touched shots than this: read everything (cheaper than one by one).
const MOST_SHOTS: usize = 512;

/// The project as last read, the heads it was read at and each live shot's order key.
#[derive(Debug, Clone)]
pub(super) struct ReadCache {
    heads: Vec<ChangeHash>,
    project: Project,
    orders: HashMap<String, String>,
    /// How many whole reads made this cache (for the tests).
    whole_reads: u32,
}

/// What a set of patches touched.
enum Touched {
    /// Only these shots (maybe none).
    Shots(HashSet<String>),
    /// Something a whole read is needed for.
    Everything,
}

impl ProjectDoc {
    /// The project now, as [`ProjectDoc::project`] reads it, read again only where
    /// it changed since the last call.
    ///
    /// # Errors
    /// The document does not have a project's shape.
    pub fn project_now(&mut self) -> Result<Project, DocError> {
        let heads = self.doc.get_heads();
        let cache = match self.read_cache.take() {
            Some(cache) if cache.heads == heads => cache,
            Some(cache) => match self.touched(&cache.heads)? {
                Touched::Shots(shots) if shots.len() <= MOST_SHOTS => {
                    self.update(cache, &shots, heads)?
                }
                _ => self.full(heads, cache.whole_reads)?,
            },
            None => self.full(heads, 0)?,
        };
        let project = cache.project.clone();
        self.read_cache = Some(cache);
        Ok(project)
    }

    /// Every shot's code by shot id, trashed shots too: one field per shot, not
    /// the whole record (the jobs view names each job's shot with it).
    ///
    /// # Errors
    /// The document does not have a project's shape.
    pub fn shot_codes(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::model::ShotCode>, DocError> {
        let shots_table = self.obj(ROOT, "shots")?;
        let mut codes = std::collections::BTreeMap::new();
        for item in self.doc.map_range(&shots_table, ..) {
            if !matches!(item.value, automerge::ValueRef::Object(_)) {
                continue;
            }
            let code = match self.doc.get(item.id(), "code")? {
                Some((Value::Scalar(v), _)) => match v.as_ref() {
                    automerge::ScalarValue::Uint(n) => *n,
                    automerge::ScalarValue::Int(n) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                },
                _ => 0,
            };
            codes.insert(item.key.into_owned(), crate::model::ShotCode(code));
        }
        Ok(codes)
    }

    fn full(&self, heads: Vec<ChangeHash>, whole_reads: u32) -> Result<ReadCache, DocError> {
        let (project, orders) = self.project_with_orders(None)?;
        Ok(ReadCache {
            heads,
            project,
            orders,
            whole_reads: whole_reads + 1,
        })
    }

    /// The records the changes made since `before` touched: each operation names
    /// the object it changed, and the object's parents name the record. (Automerge's
    /// `diff` would say the same at a cost that grows with the document: 40 ms for
    /// 10,000 shots; reading the new changes costs what they hold.)
    fn touched(&mut self, before: &[ChangeHash]) -> Result<Touched, DocError> {
        // (object, the map key it was written at) of every operation since.
        let mut ops: HashSet<(String, Option<String>)> = HashSet::new();
        for change in self.doc.get_changes(before) {
            for op in change.decode().operations {
                let key = match &op.key {
                    automerge::legacy::Key::Map(key) => Some(key.to_string()),
                    automerge::legacy::Key::Seq(_) => None,
                };
                ops.insert((op.obj.to_string(), key));
                if ops.len() > MOST_SHOTS * 8 {
                    return Ok(Touched::Everything);
                }
            }
        }
        let mut shots = HashSet::new();
        for (obj, key) in ops {
            let Ok((obj, _)) = self.doc.import(&obj) else {
                return Ok(Touched::Everything);
            };
            if obj == ROOT {
                return Ok(Touched::Everything);
            }
            let Ok(parents) = self.doc.parents(&obj) else {
                return Ok(Touched::Everything);
            };
            let path = parents.path();
            // path[0] is (root, the top-level map), path[1] (that map, the record).
            let top = match path.first() {
                Some((_, Prop::Map(top))) => top.as_str(),
                _ => return Ok(Touched::Everything),
            };
            match top {
                "shots" => {}
                "settings" | "characters" | "cinematics" | "catalogs" => {
                    return Ok(Touched::Everything);
                }
                // Jobs, takes and the rest are not part of a project.
                _ => continue,
            }
            let shot = match (path.get(1), key) {
                (Some((_, Prop::Map(shot))), _) => shot.clone(),
                // An operation on the shots table itself: a record put or removed.
                (None, Some(key)) => key,
                _ => return Ok(Touched::Everything),
            };
            shots.insert(shot);
            if shots.len() > MOST_SHOTS {
                return Ok(Touched::Everything);
            }
        }
        Ok(Touched::Shots(shots))
    }

    /// `cache` with the shots in `touched` read again.
    fn update(
        &self,
        mut cache: ReadCache,
        touched: &HashSet<String>,
        heads: Vec<ChangeHash>,
    ) -> Result<ReadCache, DocError> {
        cache.heads = heads;
        if touched.is_empty() {
            return Ok(cache);
        }
        let shots_table = self.obj(ROOT, "shots")?;
        let reader = read::Reader {
            doc: &self.doc,
            heads: None,
        };
        cache
            .project
            .shots
            .retain(|shot| !touched.contains(&shot.shot_id));
        for shot_id in touched {
            cache.orders.remove(shot_id);
            let obj: Option<ObjId> = match self.doc.get(&shots_table, shot_id.as_str())? {
                Some((Value::Object(_), obj)) => Some(obj),
                _ => None,
            };
            let Some(obj) = obj else { continue };
            let fields = reader.fields(&obj);
            if fields.bool("deleted") {
                continue;
            }
            let order = fields.str("order");
            let shot = reader.shot(shot_id, &fields);
            let at = cache.project.shots.partition_point(|other| {
                let other_order = cache.orders.get(&other.shot_id).map_or("", String::as_str);
                (other_order, other.shot_id.as_str()) < (order.as_str(), shot_id.as_str())
            });
            cache.project.shots.insert(at, shot);
            cache.orders.insert(shot_id.clone(), order);
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Position;
    use super::*;
    use crate::model::{Character, Shot, ShotCode, ShotStatus};
    use proptest::prelude::*;

    fn doc(shots: u64) -> ProjectDoc {
        let mut doc = ProjectDoc::create("증분", "p-1").expect("doc");
        let list: Vec<Shot> = (1..=shots)
            .map(|i| {
                let mut shot = Shot::new(ShotCode(i), 24);
                shot.scene = format!("장면 {i}");
                shot
            })
            .collect();
        doc.add_shots(&list, &Position::End).expect("shots");
        doc
    }

    #[derive(Debug, Clone)]
    enum Step {
        Set(usize, String),
        Move(usize, usize),
        Delete(usize),
        Add(usize),
        Character(String),
        Merge(usize, String),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..40usize, "[가-힣a-z ]{0,8}").prop_map(|(i, t)| Step::Set(i, t)),
            (0..40usize, 0..40usize).prop_map(|(a, b)| Step::Move(a, b)),
            (0..40usize).prop_map(Step::Delete),
            (0..40usize).prop_map(Step::Add),
            "[가-힣]{1,3}".prop_map(Step::Character),
            (0..40usize, "[a-z]{1,6}").prop_map(|(i, t)| Step::Merge(i, t)),
        ]
    }

    fn nth(doc: &ProjectDoc, i: usize) -> Option<Shot> {
        let shots = doc.project().expect("read").shots;
        (!shots.is_empty()).then(|| shots[i % shots.len()].clone())
    }

    fn apply(doc: &mut ProjectDoc, step: &Step) {
        match step {
            Step::Set(i, text) => {
                if let Some(mut shot) = nth(doc, *i) {
                    shot.action.clone_from(text);
                    shot.status = ShotStatus::Approved;
                    doc.update_shot(&shot).expect("set");
                }
            }
            Step::Move(a, b) => {
                if let (Some(shot), Some(target)) = (nth(doc, *a), nth(doc, *b))
                    && shot.shot_id != target.shot_id
                {
                    doc.move_shot(&shot.shot_id, &Position::Before(target.shot_id))
                        .expect("move");
                }
            }
            Step::Delete(i) => {
                if let Some(shot) = nth(doc, *i) {
                    doc.delete_shot(&shot.shot_id).expect("delete");
                }
            }
            Step::Add(i) => {
                let code = doc.next_code().expect("code");
                let shot = Shot::new(code, 12);
                let at = nth(doc, *i).map_or(Position::End, |s| Position::After(s.shot_id));
                doc.add_shots(&[shot], &at).expect("add");
            }
            Step::Character(name) => {
                doc.put_character(&Character::new(name)).expect("character");
            }
            Step::Merge(i, text) => {
                // A peer's concurrent edit, merged in.
                let mut other = doc.fork();
                if let Some(mut shot) = nth(&other, *i) {
                    shot.notes.clone_from(text);
                    other.update_shot(&shot).expect("peer edit");
                }
                doc.merge(&mut other).expect("merge");
            }
        }
    }

    #[test]
    fn shot_codes_are_the_codes_of_every_shot_trashed_or_not() {
        let mut doc = doc(5);
        let first = doc.project().expect("read");
        doc.delete_shot(&first.shots[1].shot_id).expect("trash");
        let codes = doc.shot_codes().expect("codes");
        let all: std::collections::BTreeMap<String, ShotCode> = doc
            .all_shots()
            .expect("all")
            .into_iter()
            .map(|(shot, _)| (shot.shot_id, shot.code))
            .collect();
        assert_eq!(codes, all);
        assert_eq!(codes.len(), 5);
    }

    #[test]
    fn shot_edits_read_only_the_shots_they_changed() {
        let mut doc = doc(30);
        let first = doc.project_now().expect("first");
        let mut shot = first.shots[7].clone();
        shot.action = "민아가 뒤돌아본다".into();
        doc.update_shot(&shot).expect("edit");
        let target = first.shots[2].shot_id.clone();
        doc.move_shot(&first.shots[20].shot_id, &Position::Before(target))
            .expect("move");
        doc.delete_shot(&first.shots[0].shot_id).expect("delete");
        let now = doc.project_now().expect("now");
        assert_eq!(now, doc.project().expect("whole"));
        let edited = now.shots.iter().find(|s| s.shot_id == shot.shot_id);
        assert_eq!(edited.map(|s| s.action.as_str()), Some("민아가 뒤돌아본다"));
        let whole_reads = doc.read_cache.as_ref().map(|c| c.whole_reads);
        assert_eq!(whole_reads, Some(1), "shot edits are read one by one");
        // A character: the whole project again.
        doc.put_character(&Character::new("준")).expect("character");
        assert_eq!(
            doc.project_now().expect("now"),
            doc.project().expect("whole")
        );
        assert_eq!(doc.read_cache.as_ref().map(|c| c.whole_reads), Some(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// After any sequence of edits, merges included, the incremental read is
        /// exactly the whole read.
        #[test]
        fn the_incremental_read_is_the_whole_read(steps in proptest::collection::vec(step(), 1..24)) {
            let mut doc = doc(12);
            prop_assert_eq!(doc.project_now().expect("first"), doc.project().expect("whole"));
            for step in &steps {
                apply(&mut doc, step);
                let now = doc.project_now().expect("incremental");
                let whole = doc.project().expect("whole");
                prop_assert_eq!(now, whole, "after {:?}", step);
            }
        }
    }
}
