//! Connections to the providers: TLS (rustls, ring) checked against the
//! host's CA bundle and, for tests and private gateways, one extra CA file
//! named on the host (`PURPLE_LLM_EXTRA_CA`). They leave from the
//! supervisor's own network namespace, the host's: the sandbox's rules do
//! not apply to them, the provider list does.

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use purple_policy::llm::Endpoint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The host's CA bundle (Debian's ca-certificates).
const HOST_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// A host variable naming an extra CA file the gateway trusts.
pub const EXTRA_CA_ENV: &str = "PURPLE_LLM_EXTRA_CA";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two reads of an answer: a model may think for a while.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

pub type Tls = BufReader<StreamOwned<ClientConnection, TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("no CA certificate to check providers against ({HOST_CAS} missing or empty)")]
    NoCa,
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("{host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
}

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<usize, UpstreamError> {
    let err = |reason: String| UpstreamError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let mut n = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
        n += 1;
    }
    Ok(n)
}

/// The TLS settings every upstream connection uses: read once, when the
/// gateway starts.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, UpstreamError> {
    let mut roots = RootCertStore::empty();
    let host = Path::new(HOST_CAS);
    if host.exists() {
        add_pem(&mut roots, host)?;
    }
    if let Some(extra) = extra_ca {
        add_pem(&mut roots, extra)?;
    }
    if roots.is_empty() {
        return Err(UpstreamError::NoCa);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS connection to `e`, the certificate checked for its host.
pub fn connect(config: &Arc<ClientConfig>, e: &Endpoint) -> Result<Tls, UpstreamError> {
    let err = |source: io::Error| UpstreamError::Connect {
        host: e.host.clone(),
        port: e.port,
        source,
    };
    let name = ServerName::try_from(e.host.clone())
        .map_err(|x| err(io::Error::new(io::ErrorKind::InvalidInput, x)))?;
    let addrs =
        std::net::ToSocketAddrs::to_socket_addrs(&(e.host.as_str(), e.port)).map_err(err)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(sock) => {
                sock.set_read_timeout(Some(READ_TIMEOUT)).map_err(err)?;
                sock.set_nodelay(true).map_err(err)?;
                let conn = ClientConnection::new(Arc::clone(config), name)?;
                return Ok(BufReader::new(StreamOwned::new(conn, sock)));
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}
