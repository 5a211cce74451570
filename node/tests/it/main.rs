//! The node's integration tests, as one test binary (one link of the whole stack):
//! - `cli`: the `reelmesh` binary end to end, as a newcomer and a script run it;
//! - `mesh`: real nodes on loopback in one process (sync, keys, garbage, presence);
//! - `partition`: three node processes in network namespaces (root + iproute2).

mod cli;
mod mesh;
mod partition;
