//! Opening a fresh connection to an endpoint: TCP, then the TLS handshake
//! when the cluster speaks TLS, both within the cluster's connect timeout.
//!
//! Where it sits: the send phase (`send.rs`) calls it when the pool has no
//! reusable connection for the chosen endpoint.

use monoio::net::TcpStream;
use rustls::ClientConnection;

use super::balance::Endpoint;
use super::stream::UpstreamStream;
use crate::error::{Error, ErrorKind};
use crate::shard::generation::Generation;
use crate::shard::Shard;
use crate::tls::stream::TlsStream;

pub async fn connect(shard: &Shard, generation: &Generation, endpoint: Endpoint) -> Result<UpstreamStream, Error> {
    shard.counters.upstream_connect();
    let cluster = &generation.config.clusters[endpoint.cluster];
    let addr = cluster.endpoints[endpoint.index];
    let deadline = monoio::time::Instant::now() + cluster.connect_timeout;
    let stream = match monoio::time::timeout_at(deadline, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Error::new(ErrorKind::UpstreamConnectFailed, "upstream connection refused"))
        }
        Ok(Err(e)) => {
            return Err(Error::new(ErrorKind::UpstreamConnectFailed, format!("upstream connect failed: {e}")))
        }
        Err(_) => return Err(Error::new(ErrorKind::UpstreamConnectTimeout, "upstream connect timed out")),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = generation.tls.clusters[endpoint.cluster].as_ref() else {
        return Ok(UpstreamStream::Plain(stream));
    };
    let session = ClientConnection::new(tls.config.clone(), tls.server_names[endpoint.index].clone())
        .map_err(|e| Error::new(ErrorKind::UpstreamTlsFailed, format!("upstream TLS setup failed: {e}")))?;
    let mut stream = TlsStream::new(stream, session);
    match monoio::time::timeout_at(deadline, stream.handshake()).await {
        Ok(Ok(())) => Ok(UpstreamStream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(Error::new(ErrorKind::UpstreamTlsFailed, format!("upstream TLS handshake failed: {e}"))),
        Err(_) => Err(Error::new(ErrorKind::UpstreamConnectTimeout, "upstream TLS handshake timed out")),
    }
}
