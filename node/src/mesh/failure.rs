//! Why a connection failed, in words people can act on.
//!
//! The swarm reports a failed dial as a [`DialError`] (one transport error per
//! address tried) and a failed incoming connection as a [`ListenError`]. Our
//! transport is boxed, so each transport error is an `io::Error` wrapping
//! `TransportTimeoutError<Either<Either<Either<tcp, PrivateError>, noise>, yamux>>`.
//! The refusal of a peer with another mesh key is found by type: the private
//! layer's [`private::KeyMismatch`] is reached by walking `source()` and
//! downcasting. It has to be a source of its own because `Either::source()` and
//! `io::Error::source()` return the source *of* the wrapped error, never the
//! wrapped error itself, so no walk ever meets `PrivateError`. Everything else
//! (connection refused, unreachable, a handshake that timed out) is kept as the
//! error's own words: the TCP error sits behind the same `Either`s, so its
//! `io::ErrorKind` cannot be reached either (the outer `io::Error` is always
//! `ErrorKind::Other`), and nothing here decides on it.

use std::error::Error;

use libp2p::swarm::{DialError, ListenError};
use libp2p::{Multiaddr, TransportError};

use super::private;

pub use reelmesh_protocol::api::status::FailureKind;

/// One failed connection: its kind and the underlying error's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFailure {
    /// The kind.
    pub kind: FailureKind,
    /// The error, as a chain of messages ("a: b: c").
    pub error: String,
}

/// The words for [`FailureKind::NotInThisMesh`].
pub const NOT_IN_THIS_MESH: &str = "not in this mesh: another mesh key?";

impl ConnectionFailure {
    /// Classify an error (a swarm's, or any error chain).
    #[must_use]
    pub fn of(error: &(dyn Error + 'static)) -> ConnectionFailure {
        let not_in_this_mesh = chain(error).any(|e| e.is::<private::KeyMismatch>());
        ConnectionFailure {
            kind: if not_in_this_mesh {
                FailureKind::NotInThisMesh
            } else {
                FailureKind::Other
            },
            error: words(error),
        }
    }

    /// Why, short: "not in this mesh: another mesh key?", or the error itself.
    #[must_use]
    pub fn reason(&self) -> String {
        match self.kind {
            FailureKind::NotInThisMesh => NOT_IN_THIS_MESH.to_owned(),
            FailureKind::Other => self.error.clone(),
        }
    }
}

/// Each address a dial failed on, and why. Empty when the dial did not fail on
/// the network (a dial skipped because one is under way, or aborted at shutdown).
#[must_use]
pub fn dial_failures(error: &DialError) -> Vec<(Multiaddr, ConnectionFailure)> {
    match error {
        DialError::Transport(errors) => errors
            .iter()
            .map(|(addr, error)| (addr.clone(), transport_failure(error)))
            .collect(),
        DialError::WrongPeerId { address, .. } => vec![(
            address.clone(),
            ConnectionFailure {
                kind: FailureKind::Other,
                error: crate::lowercase_first(&error.to_string()),
            },
        )],
        _ => Vec::new(),
    }
}

/// Why an incoming connection failed on the network; `None` when it did not
/// (denied by a local limit, aborted, or the peer turned out to be this node).
#[must_use]
pub fn incoming_failure(error: &ListenError) -> Option<ConnectionFailure> {
    match error {
        ListenError::Transport(error) => Some(transport_failure(error)),
        _ => None,
    }
}

fn transport_failure(error: &TransportError<std::io::Error>) -> ConnectionFailure {
    match error {
        TransportError::MultiaddrNotSupported(addr) => ConnectionFailure {
            kind: FailureKind::Other,
            error: format!("address not supported: {addr}"),
        },
        TransportError::Other(error) => ConnectionFailure::of(error),
    }
}

/// The error and its sources.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |e| (*e).source())
}

/// The messages of the chain joined with ": ", each said once (the wrappers
/// repeat their inner error's message), the first letter lowercased.
fn words(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(error) {
        let text = e.to_string();
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    crate::lowercase_first(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper whose `source()` skips itself, as `either::Either` does.
    #[derive(Debug)]
    struct Skipping(Box<dyn Error + Send + Sync>);

    impl std::fmt::Display for Skipping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl Error for Skipping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.0.source()
        }
    }

    #[test]
    fn a_key_mismatch_is_found_through_wrappers_that_skip_it() {
        let refused = private::PrivateError::WrongKey(private::KeyMismatch);
        let wrapped = std::io::Error::other(Skipping(Box::new(Skipping(Box::new(refused)))));
        let failure = ConnectionFailure::of(&wrapped);
        assert_eq!(failure.kind, FailureKind::NotInThisMesh);
        assert_eq!(failure.reason(), NOT_IN_THIS_MESH);
        assert_eq!(
            failure.error,
            "the peer is not in this mesh: its first bytes do not decrypt with this mesh key \
             (another mesh's key, or another reelmesh version)"
        );
    }

    #[test]
    fn anything_else_keeps_its_own_words() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = std::io::Error::other(Skipping(Box::new(refused)));
        let failure = ConnectionFailure::of(&wrapped);
        assert_eq!(failure.kind, FailureKind::Other);
        assert_eq!(failure.reason(), "connection refused");
    }

    #[test]
    fn an_unknown_kind_from_a_newer_node_reads_as_other() {
        let kind: FailureKind = serde_json::from_str("\"banned\"").unwrap();
        assert_eq!(kind, FailureKind::Other);
        assert_eq!(
            serde_json::to_string(&FailureKind::NotInThisMesh).unwrap(),
            "\"not_in_this_mesh\""
        );
    }
}
