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

mod holders;

use std::path::PathBuf;
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
use holders::{Holders, Pieces};

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
    Stored(PeerId, u64, StoreOutcome),
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
        let (len, cvs, holders) = self.find_holders(hash, &peers).await?;
        if len > MAX_BLOB_BYTES {
            return Err(FetchError::TooLarge {
                hash: hash.to_hex(),
                len,
                max: MAX_BLOB_BYTES,
            });
        }
        let holder_count = holders.len();
        let partial = store.partial_path(&hash);
        let file = PieceFile::open(&partial, len)
            .map_err(|e| store_error(hash, format!("{}: {e}", partial.display())))?;
        let record = partial.with_extension("have");
        let mut fetch = Fetch {
            hash,
            len,
            cvs: Arc::new(cvs),
            file: Arc::new(file),
            pieces: Pieces::load(&record, blobtree::chunk_count(len)),
            record,
            partial,
            holders: Holders::new(holders),
        };
        self.fetch_pieces(&mut fetch).await?;
        let Fetch {
            file, cvs, pieces, ..
        } = fetch;
        drop(file);
        let blob = store
            .adopt_partial(&hash, &cvs)
            .map_err(|e| store_error(hash, e.to_string()))?;
        info!(%hash, bytes = len, pieces = pieces.fetched(), holders = holder_count, "blob fetched and verified");
        Ok(Fetched {
            blob,
            pieces_fetched: pieces.fetched(),
            holders: holder_count,
        })
    }

    /// Fetches every missing piece of `fetch` from its holders, [`IN_FLIGHT`] at a
    /// time, checking and writing [`STORING`] at a time on the blocking pool.
    async fn fetch_pieces(&self, fetch: &mut Fetch) -> Result<(), FetchError> {
        let root = *fetch.hash.as_bytes();
        let mut in_flight = FuturesUnordered::new();
        let mut storing = FuturesUnordered::new();
        loop {
            while in_flight.len() < IN_FLIGHT
                && storing.len() < STORING
                && !fetch.pieces.none_wanted()
            {
                let Some(peer) = fetch.holders.take() else {
                    break;
                };
                let Some(index) = fetch.pieces.next() else {
                    break;
                };
                in_flight.push(ask_piece(self.clone(), peer, root, index));
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
                Next::Stored(peer, index, outcome) => {
                    if let Some(reason) = fetch.stored(peer, index, outcome)? {
                        warn!("peer {peer}: {reason}; asking another holder");
                        self.reject_peer(peer, reason).await?;
                    }
                }
                Next::Answer(peer, index, answer) => {
                    if let Some(bytes) = fetch.answered(peer, index, answer) {
                        storing.push(fetch.store(peer, index, bytes));
                    }
                }
            }
            if fetch.holders.is_empty()
                && in_flight.is_empty()
                && storing.is_empty()
                && !fetch.pieces.none_wanted()
            {
                fetch.pieces.save(&fetch.file, &fetch.record);
                return Err(FetchError::HoldersFailed {
                    hash: fetch.hash.to_hex(),
                    done: fetch.pieces.done_count(),
                    total: blobtree::chunk_count(fetch.len),
                });
            }
        }
        Ok(())
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

/// The store a handle fetches into.
pub(crate) fn store_for(config: &super::NodeConfig) -> Result<BlobStore, NodeError> {
    Ok(BlobStore::open(&config.data_dir)?)
}

/// A fetch under way: the blob, where its pieces go, and who is asked for them.
struct Fetch {
    hash: BlobHash,
    len: u64,
    /// The verified outboard: one chaining value per piece.
    cvs: Arc<Vec<[u8; 32]>>,
    file: Arc<PieceFile>,
    /// `blobs/partial/<hash>`, named in errors.
    partial: PathBuf,
    /// `<hash>.have`: the pieces done so far.
    record: PathBuf,
    holders: Holders,
    pieces: Pieces,
}

/// What asking a holder for a piece gave: its answer, or the request timed out.
type PieceAnswer = Result<Result<BlobResponse, NodeError>, tokio::time::error::Elapsed>;

impl Fetch {
    /// Takes in `peer`'s `answer` for piece `index`; the piece's bytes when there
    /// are some to check and write.
    fn answered(
        &mut self,
        peer: PeerId,
        index: u64,
        answer: PieceAnswer,
    ) -> Option<libp2p::bytes::Bytes> {
        self.holders.answered(peer);
        let hash = self.hash;
        match answer {
            Ok(Ok(BlobResponse::Chunk(bytes))) => return Some(bytes),
            Ok(Ok(other)) => {
                debug!("peer {peer} answered piece {index} of {hash} with {other:?}");
                self.holders.leave_out(peer);
                self.pieces.again_now(index);
            }
            Ok(Err(e)) if e.to_string().contains("busy") => {
                // The holder serves others too: ask again (it answered at once).
                self.pieces.again_later(index);
                self.holders.busy(peer);
            }
            Ok(Err(e)) => {
                debug!("piece {index} of {hash} from {peer}: {e}");
                self.pieces.again_now(index);
                self.holders.failed(peer);
            }
            Err(_) => {
                debug!("piece {index} of {hash} from {peer}: timed out");
                self.pieces.again_now(index);
                self.holders.leave_out(peer);
            }
        }
        None
    }

    /// Checks piece `index` against its chaining value and writes it at its offset,
    /// on the blocking pool; the outcome is true for a good piece written.
    fn store(
        &self,
        peer: PeerId,
        index: u64,
        bytes: libp2p::bytes::Bytes,
    ) -> impl Future<Output = (PeerId, u64, StoreOutcome)> + use<> {
        let (file, cvs) = (Arc::clone(&self.file), Arc::clone(&self.cvs));
        let (root, len) = (*self.hash.as_bytes(), self.len);
        async move {
            let outcome = tokio::task::spawn_blocking(move || {
                if !blobtree::verify_chunk(&root, len, &cvs, index, &bytes) {
                    return Ok(false);
                }
                file.write_at(&bytes, index * blobtree::CHUNK)
                    .map(|()| true)
            })
            .await;
            (peer, index, outcome)
        }
    }

    /// Takes in the outcome of storing `peer`'s piece `index`; why to reject the
    /// peer when the piece was corrupt.
    fn stored(
        &mut self,
        peer: PeerId,
        index: u64,
        outcome: StoreOutcome,
    ) -> Result<Option<String>, FetchError> {
        match outcome {
            Ok(Ok(true)) => {
                self.holders.served(peer);
                if self.pieces.done(index) {
                    self.pieces.save(&self.file, &self.record);
                }
                Ok(None)
            }
            Ok(Ok(false)) => {
                self.holders.leave_out(peer);
                self.pieces.again_now(index);
                Ok(Some(format!(
                    "sent a corrupt piece {index} of blob {}",
                    self.hash
                )))
            }
            Ok(Err(e)) => Err(store_error(
                self.hash,
                format!("{}: {e}", self.partial.display()),
            )),
            Err(e) => Err(store_error(self.hash, e.to_string())),
        }
    }
}

/// What checking and writing a piece gave: whether it was good, or why it could
/// not be written.
type StoreOutcome = Result<std::io::Result<bool>, tokio::task::JoinError>;

/// Asks `peer` for piece `index` of blob `root`, within [`REQUEST_TIMEOUT`].
async fn ask_piece(
    handle: NodeHandle,
    peer: PeerId,
    root: [u8; 32],
    index: u64,
) -> (PeerId, u64, PieceAnswer) {
    let request = BlobRequest::Chunk { hash: root, index };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, handle.blob_request(peer, request)).await;
    (peer, index, answer)
}

/// A local storage failure while fetching `hash`.
fn store_error(hash: BlobHash, why: String) -> FetchError {
    FetchError::Store {
        hash: hash.to_hex(),
        why,
    }
}
