//! The node's integration tests, as one test binary (one link of the whole stack):
//! - `cli`: the `reelmesh` binary end to end, as a newcomer and a script run it;
//! - `mesh`: real nodes on loopback in one process (sync, keys, garbage, presence);
//! - `partition`: three node processes in network namespaces (root + iproute2);
//! - `import`: re-importing an edited export on a real mesh (python3 + openpyxl).

#[path = "../support/comfy_double.rs"]
mod comfy_double;
#[path = "../support/gpu_standin.rs"]
mod gpu_standin;
#[path = "../support/llm_double.rs"]
mod llm_double;

mod advise;
mod blobs;
mod cli;
mod comfy;
mod editor;
mod faults;
mod import;
mod jobs;
mod kill;
mod mesh;
mod meshkit;
mod partition;
mod placement;
mod publish;
mod render;
mod video;

/// Every log line of this test binary so far (tests that must keep a secret out
/// of the logs search it).
pub static LOGGED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Writes a log line to the test output and to [`LOGGED`].
struct Tee;

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log to the test output (`RUST_LOG` picks the level; info by default).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "reelmesh_node=info".into()),
        )
        .with_writer(|| Tee)
        .try_init();
}
