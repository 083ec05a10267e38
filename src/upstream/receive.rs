//! The receive-head phase: the upstream's response head, interim (1xx)
//! responses skipped.
//!
//! Where it sits: first step of the exchange (`forward.rs`), which bounds
//! it by the cluster's `response_timeout` counted from the moment the
//! request is wholly sent (a long upload is not a slow response).

use monoio::io::AsyncReadRent;

use crate::error::{Error, ErrorKind};
use crate::http1::parse::Method;
use crate::http1::response::{parse_response, ResponseHead};
use crate::io::rent::read_more;

/// Largest upstream response head accepted.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

pub enum HeadError {
    /// The connection ended before a single response byte: may be retried.
    NothingReceived,
    Failed(Error),
}

/// Reads the response head into `buf` and parses it into `resp`. Bytes
/// after the head (the body's first bytes) stay in `buf` from
/// `resp.head_len` on.
pub async fn receive_head<R: AsyncReadRent>(
    upstream: &mut R,
    buf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    method: Method,
) -> Result<(), HeadError> {
    buf.clear();
    let mut received_any = false;
    loop {
        if !buf.is_empty() {
            match parse_response(buf, MAX_RESPONSE_HEAD_BYTES, method, resp) {
                Ok(true) if (100..200).contains(&resp.status) => {
                    if resp.status == 101 {
                        return Err(HeadError::Failed(Error::new(
                            ErrorKind::UpstreamBadResponse,
                            "unexpected 101 from upstream",
                        )));
                    }
                    // 100/102/103: an interim response; the final one follows.
                    let rest = resp.head_len;
                    buf.drain(..rest);
                    continue;
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(HeadError::Failed(e)),
            }
        }
        match read_more(upstream, buf).await {
            Ok(n) if n > 0 => received_any = true,
            _ if !received_any => return Err(HeadError::NothingReceived),
            _ => {
                return Err(HeadError::Failed(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream closed mid response head",
                )))
            }
        }
    }
}
