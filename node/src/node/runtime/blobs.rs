//! Blob requests inside the runtime: serving this node's blobs to peers and
//! carrying the fetcher's requests out (the swarm is the runtime's alone).
//!
//! Serving reads the disk on the blocking pool, bounded by [`MAX_SERVING`]
//! concurrent reads; the answer comes back to the event loop on a channel and goes
//! out with `send_response`. A request is a hash (never a path) and is parsed and
//! checked before anything is read; a malformed one drops the peer.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use reelmesh_protocol::blobtree;
use reelmesh_protocol::wire::{BlobRequest, BlobResponse};
use tokio::sync::oneshot;
use tracing::debug;

use super::Runtime;
use crate::mesh::codec::Frame;
use crate::store::blobs::{BlobHash, BlobStore};

/// Blob reads served at once; more requests get an empty answer (the peer asks
/// another holder or again later).
pub(super) const MAX_SERVING: usize = 8;

/// A finished read, on its way back to the event loop.
pub(super) type Served = (ResponseChannel<Vec<u8>>, Vec<u8>);

/// Outbound blob requests waiting for their answer.
pub(super) type Pending =
    std::collections::HashMap<OutboundRequestId, oneshot::Sender<Result<BlobResponse, String>>>;

impl Runtime {
    pub(super) fn send_blob_request(
        &mut self,
        peer: PeerId,
        request: &BlobRequest,
        reply: oneshot::Sender<Result<BlobResponse, String>>,
    ) {
        let id = self
            .swarm
            .behaviour_mut()
            .blobs
            .send_request(&peer, Frame::Bytes(request.encode()));
        self.blob_pending.insert(id, reply);
    }

    pub(super) fn on_blob_event(&mut self, event: request_response::Event<Frame, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => match request {
                    Frame::Bytes(bytes) => match BlobRequest::decode(&bytes) {
                        Ok(request) => self.serve_blob(request, channel),
                        Err(e) => self.reject_peer(peer, format!("malformed {e}")),
                    },
                    Frame::TooLarge { limit } => {
                        self.reject_peer(peer, format!("blob request over the {limit}-byte limit"));
                    }
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some(reply) = self.blob_pending.remove(&request_id) else {
                        return;
                    };
                    if response.is_empty() {
                        let _ = reply.send(Err(format!("peer {peer} did not answer (busy)")));
                        return;
                    }
                    match BlobResponse::decode_owned(response) {
                        Ok(answer) => {
                            let _ = reply.send(Ok(answer));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(format!("peer {peer}: malformed {e}")));
                            self.reject_peer(peer, format!("malformed {e}"));
                        }
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.blob_pending.remove(&request_id) {
                    let _ = reply.send(Err(format!("peer {peer}: {error}")));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!("blob request from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn serve_blob(&mut self, request: BlobRequest, channel: ResponseChannel<Vec<u8>>) {
        let Ok(permit) = Arc::clone(&self.blob_permits).try_acquire_owned() else {
            // Busy: an empty answer, the peer tries another holder.
            let _ = self
                .swarm
                .behaviour_mut()
                .blobs
                .send_response(channel, Vec::new());
            return;
        };
        let store = self.blob_store.clone();
        let done = self.blob_served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let answer = answer(&store, request);
            drop(permit);
            let _ = done.blocking_send((channel, answer));
        });
    }

    pub(super) fn on_blob_served(&mut self, (channel, bytes): Served) {
        let _ = self
            .swarm
            .behaviour_mut()
            .blobs
            .send_response(channel, bytes);
    }
}

/// Read what a request asks for (on the blocking pool), encoded.
fn answer(store: &BlobStore, request: BlobRequest) -> Vec<u8> {
    let response = match request {
        BlobRequest::Outboard { hash } => {
            let hash = BlobHash::from_bytes(hash);
            match store.outboard(&hash) {
                Ok(Some((len, cvs))) => BlobResponse::Outboard { len, cvs },
                Ok(None) => BlobResponse::NotFound,
                Err(e) => {
                    debug!("serving the outboard of {hash}: {e}");
                    BlobResponse::NotFound
                }
            }
        }
        BlobRequest::Chunk { hash, index } => {
            let hash = BlobHash::from_bytes(hash);
            let Some(len) = store.size(&hash) else {
                return BlobResponse::NotFound.encode();
            };
            if index >= blobtree::chunk_count(len) {
                return BlobResponse::NotFound.encode();
            }
            let wanted = usize::try_from(blobtree::chunk_len(len, index)).unwrap_or(0);
            // The frame is the kind byte and the piece, read straight in.
            let mut frame = Vec::with_capacity(1 + wanted);
            frame.push(BlobResponse::CHUNK_KIND);
            match store.read_range_into(&hash, index * blobtree::CHUNK, wanted, &mut frame) {
                Ok(()) => return frame,
                Err(e) => {
                    debug!("serving piece {index} of {hash}: {e}");
                    BlobResponse::NotFound
                }
            }
        }
    };
    response.encode()
}
