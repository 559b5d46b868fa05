//! HTTPS for the console: the certificate chain and key of `[console]`
//! (PEM) read into a rustls acceptor before the daemon starts, and a
//! listener whose connections are TLS streams. Handshakes run beside each
//! other, each bounded in time, so a client that stalls its handshake
//! holds up no one else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The acceptor for `cert` and `key`; the error names the file and what
/// is wrong with it.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("console.tls_cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "console.tls_cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("console.tls_key_file {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("console TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("console TLS: the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How long a client may take over its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

type Handshake = Option<(TlsStream<TcpStream>, SocketAddr)>;

/// A TCP listener whose accepted connections have finished their TLS
/// handshake.
pub struct Listener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    pending: JoinSet<Handshake>,
}

impl Listener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Listener {
        Listener {
            tcp,
            acceptor,
            pending: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                r = self.tcp.accept() => match r {
                    Ok((s, addr)) => {
                        let acceptor = self.acceptor.clone();
                        self.pending.spawn(async move {
                            let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(s)).await;
                            Some((tls.ok()?.ok()?, addr))
                        });
                    }
                    // Out of file descriptors, say: wait a moment, as
                    // axum's own listener does.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(Ok(Some(done))) = self.pending.join_next(), if !self.pending.is_empty() => {
                    return done;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
