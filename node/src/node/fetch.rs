//! Fetching a blob by hash from the peers that have it.
//!
//! 1. Ask every connected peer for the blob's outboard (length + one BLAKE3
//!    chaining value per 1 MiB piece). An outboard that does not merge to the hash
//!    is a lie: that peer is dropped. The peers with a good one are the holders.
//! 2. Fetch the missing pieces from the holders, [`IN_FLIGHT`] at a time spread
//!    over them. Each piece is checked against its chaining value before it is
//!    written at its offset in `blobs/partial/<hash>`; a peer that sends a bad piece
//!    is dropped (logged, `PeerRejected`) and the piece asked of another holder.
//! 3. Which pieces are done is kept in `<hash>.have` (after the data is fsynced), so
//!    a fetch that stops (no holder left, node stopped) resumes where it was.
//! 4. When every piece is there the file is fsynced and renamed into the store: it
//!    is visible only whole and verified.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use reelmesh_protocol::blobtree;
use reelmesh_protocol::wire::{BlobRequest, BlobResponse};
use tracing::{debug, info, warn};

use super::{NodeError, NodeHandle};
use crate::store::blobs::{BlobHash, BlobRef, BlobStore};
use crate::store::direct::PieceFile;

/// Pieces requested at once, over all holders.
pub const IN_FLIGHT: usize = 32;
/// Pieces requested at once from one holder (what a node serves at once).
pub const PER_HOLDER: usize = 8;
/// Busy answers tolerated from one holder before it is left out.
const MAX_BUSY: u32 = 1000;
/// Pieces being checked and written at once (on the blocking pool).
const STORING: usize = 8;
/// Largest blob fetched (bounded by the outboard size limit too).
pub const MAX_BLOB_BYTES: u64 = 256 << 30;
/// How long one outboard or piece request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A holder that fails this many requests in a row (no answer, busy) is left out.
const MAX_HOLDER_FAILURES: u32 = 3;

/// Why a fetch did not complete (what was fetched so far is kept).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connected peer has it.
    #[error("blob {hash}: no connected peer has it (asked {asked})")]
    NotFound {
        /// The blob.
        hash: String,
        /// Peers asked.
        asked: usize,
    },
    /// Every holder failed or lied before the blob was whole.
    #[error(
        "blob {hash}: every holder failed or lied; {done} of {total} pieces kept for a later try"
    )]
    HoldersFailed {
        /// The blob.
        hash: String,
        /// Pieces verified and kept.
        done: u64,
        /// Pieces in all.
        total: u64,
    },
    /// The blob is over [`MAX_BLOB_BYTES`].
    #[error("blob {hash}: {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The blob.
        hash: String,
        /// Its announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The node.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Local storage.
    #[error("blob {hash}: {why}")]
    Store {
        /// The blob.
        hash: String,
        /// What failed.
        why: String,
    },
}

/// What a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The blob, now in the store.
    pub blob: BlobRef,
    /// Pieces fetched now (the rest were there from an earlier try).
    pub pieces_fetched: u64,
    /// Peers that held it.
    pub holders: usize,
}

/// What the fetch loop got next: a holder's answer, or a piece checked and written.
enum Next<A> {
    Answer(PeerId, u64, A),
    Stored(
        PeerId,
        u64,
        Result<std::io::Result<bool>, tokio::task::JoinError>,
    ),
}

impl NodeHandle {
    /// Make sure a blob is in this node's store, fetching it from connected peers
    /// when it is not. See the module docs.
    pub async fn fetch_blob(&self, hash: BlobHash) -> Result<Fetched, FetchError> {
        let lock = Arc::clone(
            self.fetching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(hash)
                .or_default(),
        );
        let fetched = {
            let _one_at_a_time = lock.lock().await;
            self.fetch_blob_alone(hash).await
        };
        let mut fetching = self
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The last one out removes the lock (the map holds one reference).
        if Arc::strong_count(&lock) <= 2 {
            fetching.remove(&hash);
        }
        fetched
    }

    async fn fetch_blob_alone(&self, hash: BlobHash) -> Result<Fetched, FetchError> {
        let store = self.blobs.clone();
        if let Some(size) = store.size(&hash) {
            return Ok(Fetched {
                blob: BlobRef { hash, size },
                pieces_fetched: 0,
                holders: 0,
            });
        }
        let peers: Vec<PeerId> = self
            .status()
            .await?
            .peers
            .iter()
            .filter(|p| p.connected && !p.this_node)
            .filter_map(|p| p.node_id.parse().ok())
            .collect();
        let (len, cvs, mut holders) = self.find_holders(hash, &peers).await?;
        if len > MAX_BLOB_BYTES {
            return Err(FetchError::TooLarge {
                hash: hash.to_hex(),
                len,
                max: MAX_BLOB_BYTES,
            });
        }
        let total = blobtree::chunk_count(len);
        let store_error = |why: String| FetchError::Store {
            hash: hash.to_hex(),
            why,
        };
        let partial = store.partial_path(&hash);
        let have_path = partial.with_extension("have");
        let file = PieceFile::open(&partial, len)
            .map_err(|e| store_error(format!("{}: {e}", partial.display())))?;
        let file = Arc::new(file);
        let mut have = load_have(&have_path, total);
        let mut missing: VecDeque<u64> = (0..total)
            .filter(|i| !have[usize::try_from(*i).unwrap_or(usize::MAX)])
            .collect();
        let holder_count = holders.len();
        let mut failures: HashMap<PeerId, u32> = HashMap::new();
        let mut busy: HashMap<PeerId, u32> = HashMap::new();
        let mut load: HashMap<PeerId, usize> = HashMap::new();
        let mut in_flight = FuturesUnordered::new();
        let mut storing = FuturesUnordered::new();
        let mut next_holder = 0_usize;
        let mut fetched = 0_u64;
        let cvs = Arc::new(cvs);
        let root = *hash.as_bytes();
        loop {
            while in_flight.len() < IN_FLIGHT
                && storing.len() < STORING
                && !holders.is_empty()
                && !missing.is_empty()
            {
                // The next holder with room, round robin.
                let Some(peer) = (0..holders.len())
                    .map(|k| holders[(next_holder + k) % holders.len()])
                    .find(|p| load.get(p).copied().unwrap_or(0) < PER_HOLDER)
                else {
                    break;
                };
                next_holder += 1;
                let Some(index) = missing.pop_front() else {
                    break;
                };
                *load.entry(peer).or_default() += 1;
                let handle = self.clone();
                in_flight.push(async move {
                    let request = BlobRequest::Chunk { hash: root, index };
                    let answer =
                        tokio::time::timeout(REQUEST_TIMEOUT, handle.blob_request(peer, request))
                            .await;
                    (peer, index, answer)
                });
            }
            let next = tokio::select! {
                Some((peer, index, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                    Next::Answer(peer, index, answer)
                }
                Some((peer, index, outcome)) = storing.next(), if !storing.is_empty() => {
                    Next::Stored(peer, index, outcome)
                }
                else => break,
            };
            match next {
                Next::Stored(peer, index, outcome) => match outcome {
                    Ok(Ok(true)) => {
                        have[usize::try_from(index).unwrap_or(usize::MAX)] = true;
                        fetched += 1;
                        failures.remove(&peer);
                        busy.remove(&peer);
                        if fetched.is_multiple_of(64) {
                            save_have(&file, &have_path, &have);
                        }
                    }
                    Ok(Ok(false)) => {
                        let reason = format!("sent a corrupt piece {index} of blob {hash}");
                        warn!("peer {peer}: {reason}; asking another holder");
                        holders.retain(|h| *h != peer);
                        missing.push_front(index);
                        self.reject_peer(peer, reason).await?;
                    }
                    Ok(Err(e)) => {
                        return Err(store_error(format!("{}: {e}", partial.display())));
                    }
                    Err(e) => return Err(store_error(e.to_string())),
                },
                Next::Answer(peer, index, answer) => {
                    if let Some(n) = load.get_mut(&peer) {
                        *n = n.saturating_sub(1);
                    }
                    match answer {
                        Ok(Ok(BlobResponse::Chunk(bytes))) => {
                            // Checked and written on the blocking pool, several at once,
                            // while the next pieces arrive.
                            let writer = Arc::clone(&file);
                            let cvs = Arc::clone(&cvs);
                            storing.push(async move {
                                let outcome = tokio::task::spawn_blocking(move || {
                                    if !blobtree::verify_chunk(&root, len, &cvs, index, &bytes) {
                                        return Ok(false);
                                    }
                                    writer
                                        .write_at(&bytes, index * blobtree::CHUNK)
                                        .map(|()| true)
                                })
                                .await;
                                (peer, index, outcome)
                            });
                        }
                        Ok(Ok(other)) => {
                            debug!("peer {peer} answered piece {index} of {hash} with {other:?}");
                            holders.retain(|h| *h != peer);
                            missing.push_front(index);
                        }
                        Ok(Err(e)) if e.to_string().contains("busy") => {
                            // The holder serves others too: ask again (it answered at once).
                            missing.push_back(index);
                            let count = busy.entry(peer).or_default();
                            *count += 1;
                            if *count >= MAX_BUSY {
                                holders.retain(|h| *h != peer);
                            }
                        }
                        Ok(Err(e)) => {
                            debug!("piece {index} of {hash} from {peer}: {e}");
                            missing.push_front(index);
                            let count = failures.entry(peer).or_default();
                            *count += 1;
                            if *count >= MAX_HOLDER_FAILURES {
                                holders.retain(|h| *h != peer);
                            }
                        }
                        Err(_) => {
                            debug!("piece {index} of {hash} from {peer}: timed out");
                            missing.push_front(index);
                            holders.retain(|h| *h != peer);
                        }
                    }
                }
            }
            if holders.is_empty()
                && in_flight.is_empty()
                && storing.is_empty()
                && !missing.is_empty()
            {
                save_have(&file, &have_path, &have);
                let done = have.iter().filter(|h| **h).count() as u64;
                return Err(FetchError::HoldersFailed {
                    hash: hash.to_hex(),
                    done,
                    total,
                });
            }
        }
        drop(file);
        let blob = store
            .adopt_partial(&hash, &cvs)
            .map_err(|e| store_error(e.to_string()))?;
        info!(%hash, bytes = len, pieces = fetched, holders = holder_count, "blob fetched and verified");
        Ok(Fetched {
            blob,
            pieces_fetched: fetched,
            holders: holder_count,
        })
    }

    /// Ask every peer for the outboard; keep those with one that matches the hash.
    async fn find_holders(
        &self,
        hash: BlobHash,
        peers: &[PeerId],
    ) -> Result<(u64, Vec<[u8; 32]>, Vec<PeerId>), FetchError> {
        let root = *hash.as_bytes();
        let mut asks: FuturesUnordered<_> = peers
            .iter()
            .map(|peer| {
                let handle = self.clone();
                let peer = *peer;
                async move {
                    let answer = tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        handle.blob_request(peer, BlobRequest::Outboard { hash: root }),
                    )
                    .await;
                    (peer, answer)
                }
            })
            .collect();
        let mut found: Option<(u64, Vec<[u8; 32]>)> = None;
        let mut holders = Vec::new();
        while let Some((peer, answer)) = asks.next().await {
            match answer {
                Ok(Ok(BlobResponse::Outboard { len, cvs })) => {
                    if !blobtree::verify_outboard(&root, len, &cvs) {
                        self.reject_peer(peer, format!("sent a forged outboard for blob {hash}"))
                            .await?;
                        continue;
                    }
                    match &found {
                        None => {
                            found = Some((len, cvs));
                            holders.push(peer);
                        }
                        Some((l, c)) if *l == len && *c == cvs => holders.push(peer),
                        // Both verify but differ: only the last piece's length can
                        // differ (see blobtree); the pieces will tell who lied.
                        Some(_) => {}
                    }
                }
                Ok(Ok(BlobResponse::NotFound)) => {}
                Ok(Ok(other)) => debug!("peer {peer} answered an outboard request with {other:?}"),
                Ok(Err(e)) => debug!("outboard of {hash} from {peer}: {e}"),
                Err(_) => debug!("outboard of {hash} from {peer}: timed out"),
            }
        }
        match found {
            Some((len, cvs)) => Ok((len, cvs, holders)),
            None => Err(FetchError::NotFound {
                hash: hash.to_hex(),
                asked: peers.len(),
            }),
        }
    }
}

/// Which pieces an earlier try kept (all missing when there is no record or it does
/// not fit this blob).
fn load_have(path: &std::path::Path, total: u64) -> Vec<bool> {
    let total = usize::try_from(total).unwrap_or(0);
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == total => bytes.iter().map(|b| *b == 1).collect(),
        _ => vec![false; total],
    }
}

/// Record the pieces done, after the data they name is on disk.
fn save_have(file: &PieceFile, path: &std::path::Path, have: &[bool]) {
    if let Err(e) = file.sync_data() {
        warn!("{}: {e}", path.display());
        return;
    }
    let bytes: Vec<u8> = have.iter().map(|h| u8::from(*h)).collect();
    if let Err(e) = crate::store::write_atomic(path, &bytes) {
        warn!("{e}");
    }
}

/// The store a handle fetches into.
pub(crate) fn store_for(config: &super::NodeConfig) -> Result<BlobStore, NodeError> {
    Ok(BlobStore::open(&config.data_dir)?)
}
