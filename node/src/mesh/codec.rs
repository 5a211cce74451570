//! The request-response codec for document sync: a request or response is the
//! whole stream (the sender closes its side), read with a hard size cap so a peer
//! cannot make us allocate more than [`SyncCodec::max_bytes`]. Frames stay raw
//! bytes here; [`reelmesh_protocol::wire`] decodes them in the node, which can then
//! name the peer in its log line and drop it.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// An inbound request: the bytes, or the fact that the peer sent more than the cap.
/// (A read error inside the codec never reaches the node — libp2p only logs it —
/// so an oversized request is delivered as a value, and the node can name and
/// drop the peer that sent it.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame within the cap.
    Bytes(Vec<u8>),
    /// The peer sent more than this many bytes; the rest was not read.
    TooLarge {
        /// The cap that was exceeded.
        limit: usize,
    },
}

/// Raw sync frames with a size cap.
#[derive(Debug, Clone)]
pub struct SyncCodec {
    max_bytes: usize,
    /// Room made for a response before it is read (see [`SyncCodec::expecting`]).
    response_room: usize,
}

impl SyncCodec {
    /// A codec refusing frames over `max_bytes`.
    #[must_use]
    pub fn new(max_bytes: usize) -> SyncCodec {
        SyncCodec {
            max_bytes,
            response_room: 0,
        }
    }

    /// Make room for responses of about `bytes` before reading them (blob pieces:
    /// a growing buffer would copy and zero each piece several times over).
    #[must_use]
    pub fn expecting(mut self, bytes: usize) -> SyncCodec {
        self.response_room = bytes.min(self.max_bytes);
        self
    }

    /// The cap.
    #[must_use]
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    async fn read_capped<T>(&self, io: &mut T, room: usize) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut frame = Vec::with_capacity(room);
        let cap = u64::try_from(self.max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        io.take(cap).read_to_end(&mut frame).await?;
        if frame.len() > self.max_bytes {
            return Ok(Frame::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(Frame::Bytes(frame))
    }
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_capped(io, 0).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        match self.read_capped(io, self.response_room).await? {
            Frame::Bytes(bytes) => Ok(bytes),
            Frame::TooLarge { limit } => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("sync response over the {limit}-byte limit"),
            )),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Frame::Bytes(bytes) => io.write_all(&bytes).await,
            Frame::TooLarge { .. } => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to send a frame marked too large",
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn frames_up_to_the_cap_pass_and_larger_ones_fail() {
        let protocol = StreamProtocol::new("/t");
        let mut codec = SyncCodec::new(8);
        let mut ok = futures::io::Cursor::new(vec![1_u8; 8]);
        assert_eq!(
            block_on(codec.read_request(&protocol, &mut ok)).unwrap(),
            Frame::Bytes(vec![1; 8])
        );
        let mut big = futures::io::Cursor::new(vec![1_u8; 9]);
        assert_eq!(
            block_on(codec.read_request(&protocol, &mut big)).unwrap(),
            Frame::TooLarge { limit: 8 }
        );
        let mut big = futures::io::Cursor::new(vec![1_u8; 9]);
        let err = block_on(codec.read_response(&protocol, &mut big)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("8-byte limit"), "{err}");
    }
}
