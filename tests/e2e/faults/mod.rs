//! The fault suite: the proxy against upstreams and clients that
//! misbehave, one test per scenario, on both I/O drivers.
//!
//! The misbehaving upstream is `harness::upstream` (per request, from the
//! test: [`Reply`](crate::harness::Reply) and
//! [`AfterCut`](crate::harness::AfterCut); per upstream: the builder's
//! `close_idle_after`, `idle_goodbye`, `early`; addresses that refuse or
//! never answer: `refusing_addr`, `Blackhole`). Scenarios tested before
//! this suite existed stay where they are and are listed here.
//!
//! | scenario (issue 11) | outcome checked | test |
//! |---|---|---|
//! | killed mid-response, Content-Length body | client sees fewer bytes than declared, connection closed; not retried | `faults::killed::an_upstream_killed_mid_content_length_body_leaves_the_client_short_and_is_not_retried` |
//! | killed mid-response, chunked body | no last-chunk, connection closed; not retried | `faults::killed::an_upstream_killed_mid_chunked_body_leaves_the_chunked_body_unterminated_and_is_not_retried` |
//! | reset (RST) after N response bytes | short body, connection closed; not retried | `faults::killed::an_upstream_reset_mid_body_leaves_the_client_short_and_is_not_retried` |
//! | reset mid close-delimited body (re-chunked for the client) | no clean last-chunk; not retried | `faults::killed::an_upstream_reset_mid_close_delimited_body_never_gets_a_clean_chunked_end` |
//! | closed after N bytes of the response head | 502; not retried | `faults::killed::an_upstream_closing_mid_head_on_a_reused_connection_gets_502_and_is_not_retried` |
//! | reset before the response | 502; the POST reached the upstream once | `faults::killed::a_post_reset_before_its_response_gets_502_and_is_never_sent_twice` |
//! | reset before the response, GET on a reused connection | retried once, on a fresh connection, never more | `faults::killed::a_get_reset_before_its_response_on_a_reused_connection_is_retried_once_on_a_fresh_one` |
//! | closed without answering (FIN) | 502 | `upstream_errors::an_upstream_closing_without_answering_gets_502` |
//! | refused connection | 502 naming the reason | `upstream_errors::a_refused_connection_gets_502_naming_the_reason_and_the_request_id` |
//! | slow: connect beyond `connect_timeout` (blackhole: full accept queue) | 504, bounded | `upstream_errors::a_connect_timeout_gets_504` |
//! | slow: blackhole that completes handshakes but never accepts or answers | 504 at `response_timeout` | `faults::slow::an_upstream_that_never_accepts_gets_504_at_the_response_timeout` |
//! | slow: response head beyond `response_timeout` (delayed head) | 504, bounded | `upstream_errors::an_upstream_slower_than_response_timeout_gets_504` |
//! | slow: response head stops halfway | 504 at `response_timeout`, upstream connection closed | `faults::slow::a_response_head_that_stops_halfway_gets_504_at_the_response_timeout` |
//! | slow: body delayed after the head beyond `body_timeout` | client connection closed, bounded | `faults::slow::a_response_body_later_than_the_body_timeout_is_cut_off` |
//! | slow: stops mid-body, then hangs (`body_timeout`) | the bytes sent, then closed | `upstream_errors::an_upstream_that_stalls_mid_body_is_cut_off_at_the_body_timeout` |
//! | slow: upstream stops reading the request body and never answers | 504 after `body_timeout` + `response_timeout` | `faults::slow::an_upstream_that_stops_reading_the_request_body_gets_504_after_the_body_and_response_timeouts` |
//! | slow client: head beyond `header_timeout` | 408, closed | `limits::a_head_not_finished_within_header_timeout_gets_408_and_close` |
//! | slow client: body stalled beyond `body_timeout` | closed | `limits::a_body_stalled_past_body_timeout_closes_the_connection` |
//! | slow client: idle beyond `idle_timeout` | closed | `limits::an_idle_keep_alive_connection_is_closed_after_idle_timeout` |
//! | malformed response | 502, that upstream connection dropped | `faults::malformed::a_malformed_response_gets_502_and_its_connection_is_dropped` |
//! | malformed status code | 502, connection dropped | `upstream_errors::an_upstream_status_outside_100_to_599_gets_502_and_the_client_connection_stays_in_step` |
//! | malformed chunked body, with the head or after it was forwarded | 502 (client still in step), or an unterminated body and close; connection dropped | `faults::malformed::a_malformed_chunk_mid_body_gets_502_or_a_truncated_body_and_the_upstream_connection_is_dropped` |
//! | oversized response head | 502, connection dropped | `faults::malformed::an_oversized_response_head_gets_502_and_its_connection_is_dropped` |
//! | ambiguous response framing (CL + TE, two CLs) | 502, connection dropped | `framing::ambiguous_upstream_response_framing_gets_502_and_that_connection_is_dropped` |
//! | stray bytes in the same segment as a response | never reach the next request | `faults::malformed::stray_bytes_right_after_a_response_never_reach_the_next_request` |
//! | stray bytes in a later segment (after HEAD, 204/304, a second response) | never reach the next client | `pool_liveness::a_body_sent_after_a_head_response_never_reaches_the_next_client`, `pool_liveness::a_body_sent_after_a_204_or_304_never_reaches_the_next_client`, `pool_liveness::an_unsolicited_second_response_never_reaches_the_next_client` |
//! | answer early, then close | the early answer reaches the client | `relay::an_early_413_from_an_upstream_that_then_closes_reaches_the_client` |
//! | answer early, then stop reading | the early answer reaches the client; connection not reused | `relay::an_early_401_from_an_upstream_that_stops_reading_reaches_the_client` |
//! | upstream closes idle keep-alives | every request arrives exactly once | `pool_liveness::requests_after_the_upstream_closed_its_idle_connections_arrive_exactly_once`, `upstream_errors::a_stale_pooled_connection_is_retried_once_on_a_fresh_one` |
//! | upstream answers idle keep-alives with 408 | the 408 never answers a request | `pool_liveness::a_408_an_idle_upstream_sent_before_closing_never_answers_the_next_request` |
//! | all endpoints down | 502 (refused) then 503 naming the reason, fast every time | `faults::down::all_endpoints_down_gets_a_fast_502_then_503_every_time` |
//! | client aborts mid-upload | upstream connection aborted, not pooled | `faults::clients::a_client_that_aborts_mid_upload_gets_its_upstream_connection_aborted_not_pooled` |
//! | client leaves mid-download | upstream connection not pooled | `upstream_errors::a_client_that_leaves_mid_body_does_not_leave_its_upstream_connection_in_the_pool` |
//! | client never reads: time | cut off after one to two `body_timeout`s | `relay::a_client_that_never_reads_proxied_responses_is_cut_off_after_the_body_timeout`, `relay::a_client_that_never_reads_local_responses_is_cut_off_after_the_body_timeout` |
//! | client never reads: memory | at most 64 KiB (epoll 96 KiB) per client, given back | `memory::a_thousand_clients_that_stop_reading_hold_at_most_64_kib_each_and_give_it_back` |
//! | client never reads: the kernel's share | reset when cut off, no orphaned socket left in FIN-WAIT-1 holding its send buffer | `faults::clients::a_client_cut_off_for_not_reading_is_reset_not_left_behind_a_fin` |
//! | client never reads during a drain | does not hold the drain | `relay::a_client_that_never_reads_does_not_hold_a_drain_for_its_whole_timeout` |
//! | connection flood past the limits | flood gets 503/408; established clients keep being served | `faults::clients::a_connection_flood_past_the_limit_leaves_established_clients_served` |
//! | SIGTERM with one request in flight | it completes; new connections refused; exit 0 | `shutdown::sigterm_lets_an_in_flight_request_finish_refuses_new_connections_and_exits_0` |
//! | SIGTERM under load | every forwarded request answered; new connections refused; exit 0 | `faults::shutdown::sigterm_under_load_answers_every_forwarded_request_and_exits_0` |

mod clients;
mod down;
mod killed;
mod malformed;
mod shutdown;
mod slow;

use crate::harness::Upstream;

/// The targets of every request head the upstream read, in order.
fn targets(upstream: &Upstream) -> Vec<String> {
    upstream.heads().into_iter().map(|h| h.target).collect()
}

/// A raw response: (its head, lowercased, and the bytes after it).
fn split_response(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)))
        + 4;
    (String::from_utf8_lossy(&bytes[..end]).to_lowercase(), bytes[end..].to_vec())
}

/// A chunked body as a client decodes it.
#[derive(Debug)]
enum ChunkedBody {
    /// Ended by the last-chunk (`0` CRLF CRLF): the data.
    Complete(Vec<u8>),
    /// The bytes ran out before the last-chunk: the data so far.
    Truncated(Vec<u8>),
    /// Not chunked framing.
    Invalid(String),
}

fn chunked_body(mut bytes: &[u8]) -> ChunkedBody {
    let mut data = Vec::new();
    loop {
        let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return ChunkedBody::Truncated(data);
        };
        let line = String::from_utf8_lossy(&bytes[..line_end]).into_owned();
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16) else {
            return ChunkedBody::Invalid(format!("chunk size line {line:?}"));
        };
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return if bytes.ends_with(b"\r\n") { ChunkedBody::Complete(data) } else { ChunkedBody::Truncated(data) };
        }
        if bytes.len() < size + 2 {
            data.extend_from_slice(&bytes[..size.min(bytes.len())]);
            return ChunkedBody::Truncated(data);
        }
        if &bytes[size..size + 2] != b"\r\n" {
            return ChunkedBody::Invalid("chunk data not followed by CRLF".into());
        }
        data.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}
