//! TLS for servers (wss), as a sans-IO layer: rustls turns ciphertext from the transport into
//! plaintext for the [`crate::Connection`] and back, so adapters move bytes the same way with or
//! without TLS.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConnection;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Server TLS settings: a certificate chain and its private key.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

impl TlsAcceptor {
    /// From PEM text: the certificate chain (leaf first) and a PKCS#8, PKCS#1 or SEC1 key.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> io::Result<TlsAcceptor> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("certificate PEM", e))?;
        if certs.is_empty() {
            return Err(invalid("certificate PEM", "no certificate found"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid("private key PEM", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid("certificate and key", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    /// From PEM files (read once, at server start).
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> io::Result<TlsAcceptor> {
        let c =
            std::fs::read(cert_chain).map_err(|e| invalid(&cert_chain.display().to_string(), e))?;
        let k = std::fs::read(key).map_err(|e| invalid(&key.display().to_string(), e))?;
        TlsAcceptor::from_pem(&c, &k)
    }

    /// A TLS session for one new connection.
    pub fn session(&self) -> io::Result<TlsSession> {
        let conn =
            ServerConnection::new(self.config.clone()).map_err(|e| invalid("TLS session", e))?;
        Ok(TlsSession {
            conn,
            out: Vec::new(),
            out_pos: 0,
            failed: false,
        })
    }
}

/// One connection's TLS state.
pub struct TlsSession {
    conn: ServerConnection,
    /// Ciphertext waiting for the transport.
    out: Vec<u8>,
    out_pos: usize,
    failed: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("pending", &(self.out.len() - self.out_pos))
            .finish()
    }
}

impl TlsSession {
    /// Decrypts `ciphertext`, appending plaintext to `plain`. A TLS error is fatal: the alert is
    /// queued for sending and the error returned.
    pub fn receive(&mut self, mut ciphertext: &[u8], plain: &mut Vec<u8>) -> io::Result<()> {
        while !ciphertext.is_empty() {
            self.conn.read_tls(&mut ciphertext)?;
            if let Err(e) = self.conn.process_new_packets() {
                self.failed = true;
                self.pull_ciphertext();
                return Err(invalid("TLS", e));
            }
            self.read_plaintext(plain)?;
        }
        self.pull_ciphertext();
        Ok(())
    }

    fn read_plaintext(&mut self, plain: &mut Vec<u8>) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypts plaintext for sending; returns how much was taken.
    pub fn send(&mut self, plaintext: &[u8]) -> usize {
        let n = self.conn.writer().write(plaintext).unwrap_or(0);
        self.pull_ciphertext();
        n
    }

    /// Sends close_notify (before the transport is closed).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        self.pull_ciphertext();
    }

    fn pull_ciphertext(&mut self) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.out).is_err() {
                break;
            }
        }
    }

    /// Ciphertext waiting for the transport.
    pub fn pending(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Reports `n` bytes of ciphertext as written.
    pub fn consume(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// The TLS handshake is done (plaintext can flow).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// A TLS error occurred; only the alert remains to be sent.
    pub fn failed(&self) -> bool {
        self.failed
    }
}
