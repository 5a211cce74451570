//! The node's identity, the mesh key and invite tickets.
//!
//! Files in the data dir, all written owner-only (0600) by temp + fsync + rename:
//! - `node.key`: this node's ed25519 identity (libp2p protobuf encoding). Made on
//!   first start; the peer id derives from it.
//! - `mesh.key`: the 32-byte pre-shared key of the private mesh, in the standard
//!   libp2p/IPFS `swarm.key` format, so other tools can read it.
//!
//! An invite ticket is `reelmesh1` followed by base64url (no padding) of a small
//! JSON object: the mesh key, the inviting node's addresses and the project id. It
//! carries the mesh secret, so it is handed over like a password.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;
use serde::{Deserialize, Serialize};

const TICKET_PREFIX: &str = "reelmesh1";
/// File name of the mesh key inside the data dir.
pub const MESH_KEY_FILE: &str = "mesh.key";
/// File name of the node identity inside the data dir.
pub const NODE_KEY_FILE: &str = "node.key";

/// Errors reading or writing keys and tickets.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file holds something else.
    #[error("{path}: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// There is no mesh key yet.
    #[error(
        "no mesh key in {0}: run `reelmesh mesh init` on the first machine, or `reelmesh join TICKET` on the others"
    )]
    NoMeshKey(PathBuf),
    /// A mesh key exists and would be replaced.
    #[error(
        "{0} already holds a mesh key; refusing to replace it (delete it first to leave the mesh)"
    )]
    MeshKeyExists(PathBuf),
    /// The ticket is not a reelmesh ticket.
    #[error("invalid ticket: {0}")]
    Ticket(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write a file readable by its owner only, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent()
        && let Ok(handle) = fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// This node's identity, made on first use.
pub fn load_or_create_identity(data_dir: &Path) -> Result<Keypair, KeyError> {
    let path = data_dir.join(NODE_KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeyError::Malformed {
            path: path.clone(),
            why: format!("not a node identity: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| KeyError::Malformed {
                    path: path.clone(),
                    why: format!("cannot encode the new identity: {e}"),
                })?;
            write_private(&path, &bytes)?;
            Ok(keypair)
        }
        Err(e) => Err(KeyError::Io { path, source: e }),
    }
}

/// The mesh key, in `swarm.key` text form.
fn key_text(key: &[u8; 32]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")
}

fn parse_hex_key(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0_u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// Make a new mesh key (refuses to overwrite one).
pub fn init_mesh_key(data_dir: &Path) -> Result<PreSharedKey, KeyError> {
    let path = data_dir.join(MESH_KEY_FILE);
    if path.exists() {
        return Err(KeyError::MeshKeyExists(path));
    }
    let key: [u8; 32] = rand::random();
    write_private(&path, key_text(&key).as_bytes())?;
    Ok(PreSharedKey::new(key))
}

/// Store a mesh key received in a ticket. The same key again is fine; a different
/// one is refused (this node already belongs to another mesh).
pub fn store_mesh_key(data_dir: &Path, key: [u8; 32]) -> Result<(), KeyError> {
    let path = data_dir.join(MESH_KEY_FILE);
    if path.exists() {
        let current = load_mesh_key_bytes(data_dir)?;
        if current == key {
            return Ok(());
        }
        return Err(KeyError::MeshKeyExists(path));
    }
    write_private(&path, key_text(&key).as_bytes())
}

fn load_mesh_key_bytes(data_dir: &Path) -> Result<[u8; 32], KeyError> {
    let path = data_dir.join(MESH_KEY_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::NoMeshKey(data_dir.to_owned()));
        }
        Err(e) => return Err(KeyError::Io { path, source: e }),
    };
    let mut lines = text.lines();
    let ok = lines.next() == Some("/key/swarm/psk/1.0.0/") && lines.next() == Some("/base16/");
    lines
        .next()
        .filter(|_| ok)
        .and_then(parse_hex_key)
        .ok_or_else(|| KeyError::Malformed {
            path,
            why: "not a swarm.key (expected /key/swarm/psk/1.0.0/, /base16/, 64 hex digits)".into(),
        })
}

/// The mesh key of this data dir.
pub fn load_mesh_key(data_dir: &Path) -> Result<PreSharedKey, KeyError> {
    load_mesh_key_bytes(data_dir).map(PreSharedKey::new)
}

/// Load the key bytes (for tickets).
pub fn mesh_key_bytes(data_dir: &Path) -> Result<[u8; 32], KeyError> {
    load_mesh_key_bytes(data_dir)
}

/// What an invite carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The mesh key.
    pub mesh_key: [u8; 32],
    /// Where the inviting node listens.
    pub addrs: Vec<Multiaddr>,
    /// The project to join, if any.
    pub project_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TicketJson {
    k: String,
    a: Vec<String>,
    #[serde(default)]
    p: Option<String>,
}

impl Ticket {
    /// The printable ticket.
    #[must_use]
    pub fn encode(&self) -> String {
        let json = TicketJson {
            k: self.mesh_key.iter().map(|b| format!("{b:02x}")).collect(),
            a: self.addrs.iter().map(ToString::to_string).collect(),
            p: self.project_id.clone(),
        };
        let bytes = serde_json::to_vec(&json).unwrap_or_default();
        format!("{TICKET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl FromStr for Ticket {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Ticket, KeyError> {
        let body = text
            .trim()
            .strip_prefix(TICKET_PREFIX)
            .ok_or_else(|| KeyError::Ticket(format!("it does not start with '{TICKET_PREFIX}'")))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| KeyError::Ticket(format!("not base64url: {e}")))?;
        let json: TicketJson = serde_json::from_slice(&bytes)
            .map_err(|e| KeyError::Ticket(format!("damaged content: {e}")))?;
        let mesh_key = parse_hex_key(&json.k)
            .ok_or_else(|| KeyError::Ticket("the mesh key is not 64 hex digits".into()))?;
        let addrs = json
            .a
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .map_err(|e| KeyError::Ticket(format!("address '{a}': {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(project_id) = &json.p {
            reelmesh_protocol::wire::check_project_id(project_id)
                .map_err(|e| KeyError::Ticket(e.to_string()))?;
        }
        Ok(Ticket {
            mesh_key,
            addrs,
            project_id: json.p,
        })
    }
}

/// The addresses to put in an invite: those not on loopback (all of them when
/// every one is).
#[must_use]
pub fn invite_addrs(listen: &[String]) -> Vec<libp2p::Multiaddr> {
    let all: Vec<libp2p::Multiaddr> = listen.iter().filter_map(|a| a.parse().ok()).collect();
    let outside: Vec<libp2p::Multiaddr> = all
        .iter()
        .filter(|a| {
            !a.iter().any(|p| match p {
                libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
                libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            })
        })
        .cloned()
        .collect();
    if outside.is_empty() { all } else { outside }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_key_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        init_mesh_key(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(MESH_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let bytes = mesh_key_bytes(dir.path()).unwrap();
        // The file is the standard swarm.key format that libp2p's own parser reads.
        let text = fs::read_to_string(dir.path().join(MESH_KEY_FILE)).unwrap();
        let parsed: PreSharedKey = text.parse().unwrap();
        assert!(parsed.fingerprint() == PreSharedKey::new(bytes).fingerprint());
        assert!(matches!(
            init_mesh_key(dir.path()),
            Err(KeyError::MeshKeyExists(_))
        ));
        store_mesh_key(dir.path(), bytes).unwrap();
        assert!(store_mesh_key(dir.path(), [7; 32]).is_err());
    }

    #[test]
    fn missing_and_damaged_keys_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_mesh_key(dir.path()).unwrap_err();
        assert!(err.to_string().contains("reelmesh mesh init"), "{err}");
        fs::write(dir.path().join(MESH_KEY_FILE), "hello").unwrap();
        let err = load_mesh_key(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a swarm.key"), "{err}");
    }

    #[test]
    fn identity_is_stable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_identity(dir.path()).unwrap();
        let second = load_or_create_identity(dir.path()).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
        let mode = fs::metadata(dir.path().join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn tickets_round_trip_and_reject_damage() {
        let ticket = Ticket {
            mesh_key: [9; 32],
            addrs: vec!["/ip4/10.0.0.2/tcp/4001".parse().unwrap()],
            project_id: Some("p-1".into()),
        };
        let text = ticket.encode();
        assert!(text.starts_with("reelmesh1"));
        assert_eq!(text.parse::<Ticket>().unwrap(), ticket);
        for bad in ["hello", "reelmesh1!!!", "reelmesh1e30"] {
            let err = bad.parse::<Ticket>().unwrap_err();
            assert!(err.to_string().starts_with("invalid ticket"), "{err}");
        }
        let mut cut = text.clone();
        cut.truncate(text.len() - 10);
        assert!(cut.parse::<Ticket>().is_err());
    }
}
