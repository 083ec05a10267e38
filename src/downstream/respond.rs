//! Responses the proxy makes itself: errors (a status and a short
//! plain-text reason naming the request id), direct responses and
//! redirects. Each sets the request's outcome status; an error also its
//! kind.

use super::conn::{hsts_of, Conn, Failure, Next};
use super::exchange::Exchange;
use super::stream::Downstream;
use crate::error::{reason_phrase, Side};
use crate::http1::encode::{local_response, LocalResponse};
use crate::http1::parse::Method;
use crate::shard::registry::WriteTimeout;

impl<S: Downstream> Conn<S> {
    /// Answers with a response made by the proxy (error, direct, redirect).
    pub async fn respond_local(
        &mut self,
        x: &mut Exchange,
        status: u16,
        headers: &[(&[u8], &[u8])],
        body: &[u8],
        close: bool,
    ) -> Next {
        x.outcome.status = status;
        let close = close || self.registration.closing();
        self.wbuf.clear();
        local_response(
            &mut self.wbuf,
            &LocalResponse {
                status,
                headers,
                body,
                close,
                client_version: x.head.version,
                request_id: &x.request_id,
                head_only: x.head.method == Method::Head,
                hsts: hsts_of(&self.config, self.listener),
            },
        );
        if close {
            // The FIN rides with the response (see `Downstream::write_last`).
            self.registration.set_write_timeout(Some(WriteTimeout::new(self.send_timeout)));
            let len = self.wbuf.len();
            if let Ok(fin) = self.stream.write_last(&mut self.wbuf).await {
                self.fin_sent = fin;
                self.registration.add_sent(len);
            }
            self.registration.set_write_timeout(None);
            return Next::Close;
        }
        match self.flush().await {
            Ok(()) => Next::KeepAlive,
            Err(_) => Next::Close,
        }
    }

    /// Answers an error with its status and a short plain-text reason.
    pub async fn respond_error(&mut self, x: &mut Exchange, failure: Failure) -> Next {
        let Failure { error, response_started } = failure;
        tracing::debug!(peer = %self.peer, error = %error, "request failed");
        x.outcome.error = Some(error.kind);
        let Some(status) = error.kind.status() else { return Next::Close };
        if response_started {
            return Next::Close;
        }
        // Keep the connection only when the failure was the upstream's and
        // the request was read to its end: the next request is in sync.
        let keep = error.side == Side::Upstream && x.request_done && x.head.wants_keep_alive();
        let body = format!(
            "{status} {}: {}\nrequest-id: {}\n",
            reason_phrase(status),
            error.cause,
            String::from_utf8_lossy(&x.request_id)
        );
        self.respond_local(x, status, &[(b"content-type", b"text/plain; charset=utf-8")], body.as_bytes(), !keep).await
    }
}
