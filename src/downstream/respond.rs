//! Responses the proxy makes itself: errors and refusals (a status, the
//! error's own header fields, and a body from the one error renderer,
//! `error::render`, in the route's `error_format`), direct responses and
//! redirects. Each sets the request's outcome status; an error also its
//! kind.

use super::conn::{hsts_of, Conn, Failure, Next};
use super::exchange::Exchange;
use super::stream::Downstream;
use crate::error::{render, ErrorFormat, Side};
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

    /// Answers an error with its status, its header fields and a body
    /// naming the reason and the request id, in the format of the route
    /// the request matched (plain text before routing).
    pub async fn respond_error(&mut self, x: &mut Exchange, failure: Failure) -> Next {
        let Failure { error, response_started } = failure;
        tracing::debug!(peer = %self.peer, error = %error, "request failed");
        x.outcome.error = Some(error.kind);
        let Some(status) = error.kind.status() else { return Next::Close };
        if response_started {
            return Next::Close;
        }
        // Keep the connection only when the failure was the upstream's, or
        // a policy's refusal of a well-formed request, and the request was
        // read to its end: the next request is in sync.
        let in_sync = error.side == Side::Upstream || error.kind.is_refusal();
        let keep = in_sync && x.request_done && x.head.wants_keep_alive();
        let format = x
            .outcome
            .route
            .and_then(|r| self.config.routes.get(r))
            .map_or(ErrorFormat::Text, |r| r.policies.error_format);
        let rendered = render(&error, status, format, &x.request_id);
        let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(1 + error.headers.len());
        headers.push((b"content-type", rendered.content_type));
        headers.extend(error.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        self.respond_local(x, status, &headers, &rendered.body, !keep).await
    }
}
