//! Borrowed read and write halves of one stream.
//!
//! Where it sits: the duplex relay (`upstream/relay.rs`) reads the request
//! body from the client while it writes the response to the same client,
//! and writes to the upstream while it reads from it. Both directions run
//! in one task, as two futures polled together; each needs its own handle
//! on the stream.
//!
//! monoio's contract for this is the `Split` marker trait: a type that
//! implements it promises that its `AsyncReadRent` and `AsyncWriteRent`
//! methods may run concurrently (monoio marks `TcpStream`; this crate marks
//! its TLS stream and its upstream stream, see their `Split` impls).
//! monoio's own `into_split` needs the stream by value behind an `Rc`;
//! these halves borrow it for the length of one exchange, so the connection
//! keeps owning its stream.

use std::marker::PhantomData;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::BufResult;

/// The reading side of a split stream.
pub struct ReadHalf<'a, S> {
    stream: *mut S,
    _borrow: PhantomData<&'a mut S>,
}

/// The writing side of a split stream.
pub struct WriteHalf<'a, S> {
    stream: *mut S,
    _borrow: PhantomData<&'a mut S>,
}

/// Splits `stream` into halves that live as long as the borrow.
pub fn split<S: Split>(stream: &mut S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    let stream: *mut S = stream;
    (ReadHalf { stream, _borrow: PhantomData }, WriteHalf { stream, _borrow: PhantomData })
}

impl<S: AsyncReadRent + Split> AsyncReadRent for ReadHalf<'_, S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `stream` outlives `'a` (we hold its unique borrow); the
        // only other handle is the write half, and `S: Split` promises that
        // reads and writes may run concurrently (monoio's contract, as for
        // its own `OwnedReadHalf`). Halves are neither Send nor Sync.
        unsafe { &mut *self.stream }.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: as in `read`.
        unsafe { &mut *self.stream }.readv(buf).await
    }
}

impl<S: AsyncWriteRent + Split> AsyncWriteRent for WriteHalf<'_, S> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: as in `ReadHalf::read`, with the roles swapped.
        unsafe { &mut *self.stream }.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: as in `ReadHalf::read`.
        unsafe { &mut *self.stream }.writev(buf).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        // SAFETY: as in `ReadHalf::read`.
        unsafe { &mut *self.stream }.flush().await
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        // SAFETY: as in `ReadHalf::read`.
        unsafe { &mut *self.stream }.shutdown().await
    }
}

impl<S> WriteHalf<'_, S> {
    /// The stream, for operations that are neither reads nor writes (the
    /// closing write of a plain socket). Only while no read is in flight.
    ///
    /// # Safety
    /// The caller must not use the result while the read half has an
    /// operation in flight that touches the same state.
    pub unsafe fn stream(&mut self) -> &mut S {
        // SAFETY: the caller upholds the contract above.
        unsafe { &mut *self.stream }
    }
}
