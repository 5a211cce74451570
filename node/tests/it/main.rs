//! The node's integration tests, as one test binary (one link of the whole stack):
//! - `cli`: the `reelmesh` binary end to end, as a newcomer and a script run it;
//! - `mesh`: real nodes on loopback in one process (sync, keys, garbage, presence);
//! - `partition`: three node processes in network namespaces (root + iproute2).

#[path = "../support/comfy_double.rs"]
mod comfy_double;

mod blobs;
mod cli;
mod comfy;
mod jobs;
mod mesh;
mod partition;
mod render;
