//! Verifying a blob piece by piece against its BLAKE3 name.
//!
//! A blob is named by the BLAKE3 hash of its bytes. BLAKE3 is a Merkle tree, so the
//! name also commits to the chaining value (CV) of every 1 MiB piece of the blob
//! ([`CHUNK`]-aligned subtrees): a holder sends the list of those CVs (the
//! *outboard*, 32 bytes per MiB), the fetcher checks that merging them gives the
//! name, then checks every piece against its CV as it arrives. A peer that sends one
//! bad byte is caught on that piece, not after the whole download, and pieces can
//! come from several peers at once and resume after a stop. This is bao's idea with
//! one fixed piece size, done with BLAKE3's own `hazmat` API.
//!
//! A blob of at most one piece has an empty outboard: the piece is checked against
//! the name itself.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

/// Piece size: 1 MiB (a power of two, a multiple of BLAKE3's 1 KiB chunk).
pub const CHUNK: u64 = 1 << 20;

/// How many pieces a blob of `len` bytes has (at least one, even when empty).
#[must_use]
pub fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK).max(1)
}

/// The byte length of piece `index` of a blob of `len` bytes (0 past the end).
#[must_use]
pub fn chunk_len(len: u64, index: u64) -> u64 {
    let start = index.saturating_mul(CHUNK);
    if start >= len {
        return 0;
    }
    (len - start).min(CHUNK)
}

/// The chaining value of piece `index` (its bytes at offset `index * CHUNK`).
#[must_use]
pub fn chunk_cv(bytes: &[u8], index: u64) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * CHUNK);
    hasher.update(bytes);
    hasher.finalize_non_root()
}

/// The outboard of a whole blob in memory (tests, small blobs).
#[must_use]
pub fn outboard(bytes: &[u8]) -> Vec<ChainingValue> {
    if bytes.len() as u64 <= CHUNK {
        return Vec::new();
    }
    bytes
        .chunks(CHUNK as usize)
        .enumerate()
        .map(|(i, piece)| chunk_cv(piece, i as u64))
        .collect()
}

/// The outboard of a blob written in pieces of any size: the CVs are computed as
/// the bytes go by, so a blob stored once is hashed once and never read back for
/// its outboard.
#[derive(Debug, Clone, Default)]
pub struct OutboardWriter {
    piece: blake3::Hasher,
    filled: u64,
    cvs: Vec<ChainingValue>,
}

impl OutboardWriter {
    /// The next bytes of the blob.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = usize::try_from(CHUNK - self.filled).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.piece.update(now);
            self.filled += now.len() as u64;
            bytes = rest;
            if self.filled == CHUNK {
                self.cvs.push(self.piece.finalize_non_root());
                self.filled = 0;
                self.piece = blake3::Hasher::new();
                self.piece.set_input_offset(self.cvs.len() as u64 * CHUNK);
            }
        }
    }

    /// The outboard of all the bytes given ([`outboard`]'s answer).
    #[must_use]
    pub fn finish(mut self) -> Vec<ChainingValue> {
        let len = self.cvs.len() as u64 * CHUNK + self.filled;
        if len <= CHUNK {
            return Vec::new();
        }
        if self.filled > 0 {
            self.cvs.push(self.piece.finalize_non_root());
        }
        self.cvs
    }
}

/// Whether `cvs` is the outboard of the blob named `root` with `len` bytes.
#[must_use]
pub fn verify_outboard(root: &[u8; 32], len: u64, cvs: &[ChainingValue]) -> bool {
    if len <= CHUNK {
        return cvs.is_empty();
    }
    if cvs.len() as u64 != chunk_count(len) {
        return false;
    }
    let left = left_subtree_len(len);
    let l = subtree(cvs, 0, left);
    let r = subtree(cvs, left, len - left);
    merge_subtrees_root(&l, &r, Mode::Hash).as_bytes() == root
}

/// The CV of the subtree of `len` bytes starting at byte `offset` (a multiple of
/// [`CHUNK`]; every split point BLAKE3 makes above one piece is one).
fn subtree(cvs: &[ChainingValue], offset: u64, len: u64) -> ChainingValue {
    if len <= CHUNK {
        return usize::try_from(offset / CHUNK)
            .ok()
            .and_then(|i| cvs.get(i))
            .copied()
            .unwrap_or([0; 32]);
    }
    let left = left_subtree_len(len);
    let l = subtree(cvs, offset, left);
    let r = subtree(cvs, offset + left, len - left);
    merge_subtrees_non_root(&l, &r, Mode::Hash)
}

/// Whether `bytes` is piece `index` of the blob named `root` with `len` bytes and a
/// verified outboard `cvs`.
#[must_use]
pub fn verify_chunk(
    root: &[u8; 32],
    len: u64,
    cvs: &[ChainingValue],
    index: u64,
    bytes: &[u8],
) -> bool {
    if bytes.len() as u64 != chunk_len(len, index) && !(len == 0 && index == 0 && bytes.is_empty())
    {
        return false;
    }
    if len <= CHUNK {
        return blake3::hash(bytes).as_bytes() == root;
    }
    usize::try_from(index)
        .ok()
        .and_then(|i| cvs.get(i))
        .is_some_and(|cv| *cv == chunk_cv(bytes, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn an_outboard_written_in_pieces_of_any_size_is_the_whole_blobs() {
        let c = CHUNK as usize;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 17] {
            let bytes = blob(len);
            for step in [1_000, 65_536, c, c + 3, 3 * c] {
                let mut writer = OutboardWriter::default();
                for part in bytes.chunks(step) {
                    writer.update(part);
                }
                assert_eq!(writer.finish(), outboard(&bytes), "len {len}, step {step}");
            }
        }
    }

    #[test]
    fn outboards_verify_for_every_shape_of_tree() {
        let c = CHUNK as usize;
        for len in [
            0,
            1,
            1000,
            c,
            c + 1,
            2 * c,
            2 * c + 7,
            3 * c,
            5 * c - 1,
            8 * c,
            9 * c + 3,
        ] {
            let bytes = blob(len);
            let root = *blake3::hash(&bytes).as_bytes();
            let cvs = outboard(&bytes);
            assert!(verify_outboard(&root, len as u64, &cvs), "len {len}");
            for index in 0..chunk_count(len as u64) {
                let start = (index * CHUNK) as usize;
                let end = (start + c).min(len);
                assert!(
                    verify_chunk(&root, len as u64, &cvs, index, &bytes[start..end]),
                    "len {len} piece {index}"
                );
            }
        }
    }

    #[test]
    fn a_lie_anywhere_is_caught() {
        let c = CHUNK as usize;
        let bytes = blob(3 * c + 5);
        let len = bytes.len() as u64;
        let root = *blake3::hash(&bytes).as_bytes();
        let cvs = outboard(&bytes);
        // A forged outboard (one CV changed, one missing, the wrong length).
        let mut forged = cvs.clone();
        forged[1][0] ^= 1;
        assert!(!verify_outboard(&root, len, &forged));
        assert!(!verify_outboard(&root, len, &cvs[..3]));
        assert!(!verify_outboard(&root, len + CHUNK, &cvs));
        // A length lie within the last piece passes the outboard (the tree has the
        // same shape) but no last piece can ever match it.
        if verify_outboard(&root, len + 1, &cvs) {
            assert!(!verify_chunk(&root, len + 1, &cvs, 3, &bytes[3 * c..]));
            let mut padded = bytes[3 * c..].to_vec();
            padded.push(0);
            assert!(!verify_chunk(&root, len + 1, &cvs, 3, &padded));
        }
        // One flipped byte in a piece, a short piece, a piece at the wrong index.
        let mut piece = bytes[c..2 * c].to_vec();
        piece[77] ^= 0x40;
        assert!(!verify_chunk(&root, len, &cvs, 1, &piece));
        assert!(!verify_chunk(&root, len, &cvs, 1, &bytes[c..2 * c - 1]));
        assert!(!verify_chunk(&root, len, &cvs, 2, &bytes[c..2 * c]));
        assert!(!verify_chunk(&root, len, &cvs, 9, &bytes[c..2 * c]));
        // A small blob is checked against the name itself.
        let small = blob(10);
        let small_root = *blake3::hash(&small).as_bytes();
        assert!(verify_chunk(&small_root, 10, &[], 0, &small));
        assert!(!verify_chunk(&small_root, 10, &[], 0, &blob(9)));
        assert!(!verify_outboard(&small_root, 10, &cvs));
    }
}
