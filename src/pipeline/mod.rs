//! The request pipeline. This file is the ONLY statement of stage order:
//!
//! ```text
//! route            normalise path ([listeners.paths]); first matching route
//!                  (API version selection joins here)         400 / 404
//! IP rules         the listener's ip_rules, then the route's,
//!                  on the effective client address (a request
//!                  matching no route is judged by the
//!                  listener's before its 404)                 403
//! (connection limits per client: issue 14, "IP rules, connection limits")
//! (CORS preflight, answered here: issue 14, "CORS")
//! authentication   [routes.auth]: API key from header, query
//!                  (removed upstream) or cookie -> consumer   401 (400 twice)
//!                  (JWT, mTLS, external: issue 14 parts)
//! (authorization, consumer allow lists and scopes: issue 14, "JWT")
//! (rate limits and quotas: issue 14, "Rate limits and quotas")
//! body limit       Content-Length against the route's limit   413
//! (request transforms: headers, path, body: a later issue)
//! action           direct response | redirect | proxy:
//!   prepare        body bytes in hand checked, 100 Continue,
//!                  upstream head assembled                   400 413 408
//!   select         which endpoint of the cluster: not tried by
//!                  this request, not marked down (all down: 503
//!                  at once)                                   503
//!   send           pool checkout or connect, one write        502 504
//!                  (could not connect: the next endpoint)
//!   receive head   the upstream's response head               502 504
//!   response stages (none yet: transforms, version headers)
//!   relay          response body down, and the rest of a
//!                  streamed request body up, at the same time
//!   (a failed try may go round select -> send -> receive
//!    head again: a connect failure to another endpoint, a
//!    stale pooled connection per upstream/retry.rs)
//! ```
//!
//! Stages are plain functions over the connection (`Conn`: stream and
//! buffers) and the request (`Exchange`: head, path, client, consumer,
//! outcome); each fills its part of the outcome, which the connection
//! loop records after the response (`observe/record.rs`). The route's
//! policies are already compiled into plain data by the config
//! (`Route::policies`); the policy stages are in `crate::policy`. A stage
//! that refuses returns the error; `respond_error` answers it through
//! the one renderer in the route's `error_format`, and no upstream sees
//! the request.

pub mod path;
pub mod route;

use crate::config::RouteAction;
use crate::downstream::conn::{Conn, Failure, Next};
use crate::downstream::exchange::Exchange;
use crate::downstream::stream::Downstream;
use crate::error::{Error, ErrorKind};
use crate::http1::parse::{origin_form, Framing};
use crate::http1::response::ResponseHead;
use crate::policy;
use crate::shard::generation::ShardGeneration;
use crate::shard::Shard;
use crate::upstream::balance::{self, Tried};
use crate::upstream::forward::{self, ExchangeError};
use crate::upstream::retry::Attempt;
use crate::upstream::send::{self, SendError};

/// Runs every stage for the request whose head `x` holds (parsed in
/// `c.rbuf`).
pub async fn handle<S: Downstream>(shard: &Shard, c: &mut Conn<S>, x: &mut Exchange) -> Result<Next, Failure> {
    // The request's generation, taken once: every stage reads this one,
    // whatever reloads happen while the request is served.
    let generation = c.generation.clone();
    let config = generation.config();

    // Stage: route.
    let target = origin_form(x.head.target.of(&c.rbuf));
    let rules = &config.listeners[c.listener].paths;
    let refused = |e: path::PathError| Error::new(ErrorKind::BadRequest, e.reason());
    x.query = path::normalise(target, rules, &mut x.path).map_err(refused)?.map(|q| {
        // Remember the query as a span of rbuf for the upstream head.
        let start = q.as_ptr() as usize - c.rbuf.as_ptr() as usize;
        start..start + q.len()
    });
    // Differs from the forwarded path only under matrix_parameters = "strip".
    let match_path = path::match_form(&x.path, rules).map_err(refused)?;
    let input = route::MatchInput::new(&x.head, &c.rbuf, match_path.as_deref().unwrap_or(&x.path));
    let route_index = route::select(config, c.listener, &input);
    x.outcome.route = route_index;
    let route = route_index.map(|i| &config.routes[i]);

    // Stage: IP rules.
    policy::ip_rules::admit(&config.listeners[c.listener], route, c.client.addr())?;
    let route = route.ok_or_else(|| Error::new(ErrorKind::NoRoute, "no route matches this request"))?;

    // Stage: authentication.
    if let Some(auth) = &route.policies.auth {
        policy::api_key::authenticate(auth, &config.consumers, &c.rbuf, x)?;
    }

    // Stage: body limit (chunked bodies are also counted while streaming).
    let body_limit = route.max_request_body_bytes.unwrap_or(config.listeners[c.listener].limits.max_request_body_bytes);
    if let Framing::Length(n) = x.head.framing {
        if n > body_limit {
            return Err(Error::new(ErrorKind::BodyTooLarge, "request body larger than the limit").into());
        }
    }

    // Stage: action.
    match &route.action {
        RouteAction::Proxy { cluster } => {
            x.outcome.cluster = Some(*cluster);
            proxy(shard, &generation, c, x, *cluster, body_limit).await
        }
        RouteAction::Direct { status, headers, body } => {
            let headers: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            let close = !x.request_done || !x.head.wants_keep_alive();
            Ok(c.respond_local(x, *status, &headers, body, close).await)
        }
        RouteAction::HttpsRedirect { status, port } => {
            let Some(host) = x.head.host else {
                return Err(Error::new(ErrorKind::BadRequest, "a redirect to https needs a Host").into());
            };
            let target = RouteAction::https_location(host.of(&c.rbuf), *port, &x.path, x.upstream_query(&c.rbuf));
            let close = !x.request_done || !x.head.wants_keep_alive();
            Ok(c.respond_local(x, *status, &[(b"location", &target)], b"", close).await)
        }
        RouteAction::Redirect { status, location, keep_path } => {
            let mut target = location.clone().into_bytes();
            if *keep_path {
                if target.last() == Some(&b'/') {
                    target.pop();
                }
                target.extend_from_slice(&x.path);
                if let Some(q) = x.upstream_query(&c.rbuf) {
                    target.push(b'?');
                    target.extend_from_slice(q);
                }
            }
            let close = !x.request_done || !x.head.wants_keep_alive();
            Ok(c.respond_local(x, *status, &[(b"location", &target)], b"", close).await)
        }
    }
}

/// The proxy action, phase by phase (see the table at the top).
async fn proxy<S: Downstream>(
    shard: &Shard,
    generation: &ShardGeneration,
    c: &mut Conn<S>,
    x: &mut Exchange,
    cluster: usize,
    body_limit: u64,
) -> Result<Next, Failure> {
    // The hashing algorithms' key, read from the head before `prepare`
    // reuses the buffers; `None` at once for other clusters.
    let key = balance::request_key(&generation.config().clusters[cluster].balance, x, &c.client, &c.rbuf);
    let mut request = forward::prepare(shard, c, x, cluster, body_limit).await?;
    let mut attempt = Attempt::first();
    // Endpoints that could not be connected to for this request, and why
    // the last one could not.
    let mut tried = Tried::default();
    let mut connect_error: Option<Error> = None;
    loop {
        let endpoint = match balance::select(generation, &shard.endpoint_states, cluster, &tried, key) {
            Ok(endpoint) => endpoint,
            Err(none) => return Err(connect_error.unwrap_or(none).into()),
        };
        // In flight from here until this try ends, whichever way it ends
        // (the guard gives the count back when dropped).
        let _in_flight = shard.endpoint_states.in_flight.start(endpoint.id.slot());
        if x.outcome.endpoint.is_some() {
            shard.counters.upstream_retry();
            x.outcome.retries += 1;
        }
        x.outcome.endpoint = Some(endpoint);
        // A try that failed before any response byte: (why, on a reused connection?).
        let (failure, reused) = match send::send(shard, &generation.shared, endpoint, attempt, &mut c.wbuf).await {
            Err(SendError::Connect(error)) => {
                // No byte left for the upstream: another endpoint may take
                // the request, whatever its method (nginx's
                // `proxy_next_upstream error timeout`). One that refused or
                // timed out is passed over by the next requests too.
                balance::connect_failed(generation, &shard.endpoint_states, endpoint, &error);
                tried.add(endpoint.index);
                connect_error = Some(error);
                continue;
            }
            Err(SendError::Write { failure, reused }) => (failure, reused),
            Ok(upstream) => {
                let reused = upstream.reused;
                x.outcome.upstream_reused = reused;
                x.outcome.timings.upstream_connect = upstream.connect_time;
                let result = forward::exchange(shard, c, x, &mut request, upstream, response_stages).await;
                balance::exchange_done(
                    generation,
                    &shard.endpoint_states,
                    endpoint,
                    x.outcome.upstream_status,
                    &result,
                );
                match result {
                    Ok(next) => return Ok(next),
                    Err(ExchangeError::Failed(failure)) => return Err(failure),
                    Err(ExchangeError::Retry(failure)) => (failure, reused),
                }
            }
        };
        if !attempt.may_retry(&failure, reused, request.replayable, request.method) {
            return Err(failure.into_error().into());
        }
        attempt = attempt.next();
    }
}

/// Stage: response stages, run on the upstream's response head before it
/// goes to the client. None yet: response transforms and API version
/// headers are later issues.
fn response_stages(_response: &ResponseHead) -> Result<(), Error> {
    Ok(())
}
