//! Buffer-ownership helpers over monoio's rent-style I/O.
//!
//! monoio (like io_uring itself) takes ownership of a buffer for the length
//! of an operation and hands it back with the result. The connection keeps
//! its buffers in `Vec<u8>` fields; these helpers move a field out, run the
//! operation and put it back, so call sites stay one line. If the future
//! is dropped mid-operation (a timeout fired) the field is left empty: the
//! caller then closes the connection, never reads that buffer again.

use std::io;
use std::ops::Range;

use monoio::buf::{IoBufMut, Slice, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// Appends what the socket has to `buf` (up to its capacity). `Ok(0)` is EOF.
pub async fn read_more<S: AsyncReadRent>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut owned = std::mem::take(buf);
    let len = owned.len();
    let cap = owned.bytes_total();
    if len == cap {
        *buf = owned;
        return Err(io::Error::other("read buffer full"));
    }
    let (res, slice) = stream.read(SliceMut::new(owned, len, cap)).await;
    *buf = slice.into_inner();
    res
}

/// Writes `buf[range]` completely.
pub async fn write_range<S: AsyncWriteRent>(stream: &mut S, buf: &mut Vec<u8>, range: Range<usize>) -> io::Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let owned = std::mem::take(buf);
    let (res, slice) = stream.write_all(Slice::new(owned, range.start, range.end)).await;
    *buf = slice.into_inner();
    res.map(|_| ())
}

/// Writes all of `buf`.
pub async fn write_all<S: AsyncWriteRent>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<()> {
    let len = buf.len();
    write_range(stream, buf, 0..len).await
}
