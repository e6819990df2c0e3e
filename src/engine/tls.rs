//! The client side of TLS for the calls made by hand to an engine reached over TLS.

use std::sync::Arc;

/// The client side of TLS as the docker CLI sets it up from `DOCKER_CERT_PATH`: the engine
/// must present a certificate of `ca.pem`; we present `cert.pem` with `key.pem`.
pub(super) fn tls_config(dir: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |file: &str, e: &dyn std::fmt::Display| {
        format!(
            "{}: {e} (DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem)",
            dir.join(file).display()
        )
    };
    let certs = |file: &str| {
        CertificateDer::pem_file_iter(dir.join(file))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(file, &e))
            .and_then(|certs| match certs.is_empty() {
                true => Err(bad(file, &"no certificate in it")),
                false => Ok(certs),
            })
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs("ca.pem")? {
        roots.add(cert).map_err(|e| bad("ca.pem", &e))?;
    }
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).map_err(|e| bad("key.pem", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("cert.pem")?, key)
        .map_err(|e| bad("cert.pem", &e))?;
    Ok(Arc::new(config))
}
