//! Where the Docker engine listens: `DOCKER_HOST` checked at start, and the TLS files the
//! docker CLI would use with `DOCKER_TLS_VERIFY`.

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;

/// Where the Docker engine listens. Never a TCP listener of ours: this only says where to
/// connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(PathBuf),
    /// `tcp://` or `http://`, kept as given (e.g. a docker-socket-proxy).
    Tcp(String),
    /// `tcp://` with `DOCKER_TLS_VERIFY`: TLS with the client certificate in `cert_path`,
    /// verifying the engine against its `ca.pem`.
    Tls {
        url: String,
        cert_path: PathBuf,
    },
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerHost::Tcp(url) | DockerHost::Tls { url, .. } => f.write_str(url),
        }
    }
}

pub fn parse_docker_host(raw: &str) -> Result<DockerHost, ConfigError> {
    let raw = raw.trim();
    let bad = || ConfigError::DockerHost(raw.to_string());
    if let Some(path) = raw.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(bad());
        }
        return Ok(DockerHost::Unix(PathBuf::from(path)));
    }
    for scheme in ["tcp://", "http://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            // An address that cannot be is said at start, not retried forever.
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if !valid_host_port(authority) {
                return Err(bad());
            }
            return Ok(DockerHost::Tcp(raw.to_string()));
        }
    }
    Err(bad())
}

/// `host:port`, `1.2.3.4:port` or `[::1]:port`, with a port from 1 to 65535.
fn valid_host_port(authority: &str) -> bool {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, port)) = v6.split_once("]:") else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (None, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), port),
            None => return false,
        }
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host {
        None => true,
        // All digits and dots: it must be an IPv4 address, not a name.
        Some(h) if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            h.parse::<std::net::Ipv4Addr>().is_ok()
        }
        Some(h) => {
            !h.is_empty()
                && !h.starts_with(['-', '.'])
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        }
    };
    port_ok && host_ok
}

/// The TLS files the docker CLI would use for a tcp:// engine: with `DOCKER_TLS_VERIFY` set to
/// anything not empty (even `0`, as the CLI), `ca.pem`, `cert.pem` and `key.pem` in
/// `DOCKER_CERT_PATH`, else in `~/.docker`. A missing file stops us at start.
pub fn with_tls(
    host: DockerHost,
    tls_verify: Option<&str>,
    cert_path: Option<PathBuf>,
) -> Result<DockerHost, ConfigError> {
    let DockerHost::Tcp(url) = host else {
        return Ok(host);
    };
    if tls_verify.is_none_or(str::is_empty) {
        return Ok(DockerHost::Tcp(url));
    }
    let cert_path = cert_path.unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker")
    });
    for file in TLS_FILES {
        let path = cert_path.join(file);
        if let Err(e) = std::fs::File::open(&path) {
            return Err(ConfigError::CertPath {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    }
    Ok(DockerHost::Tls { url, cert_path })
}

/// The files of `DOCKER_CERT_PATH`, as the docker CLI names them.
pub const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hosts() {
        let cases = [
            ("unix:///var/run/docker.sock", true),
            ("unix:///run/user/1000/docker.sock", true),
            ("tcp://127.0.0.1:2375", true),
            ("http://socket-proxy:2375", true),
            ("tcp://", false),
            ("tcp://256.0.0.1:99999", false),
            ("tcp://256.0.0.1:2375", false),
            ("tcp://10.0.0.1:99999", false),
            ("tcp://[::1", false),
            ("tcp://[::1]:2375", true),
            ("tcp://[zz]:2375", false),
            ("tcp://proxy:0", false),
            ("tcp://proxy:", false),
            ("tcp://proxy", false),
            ("tcp://socket_proxy:2375/", true),
            ("tcp://bad_host!:2375", false),
            ("tcp://10.0.0.1:2375", true),
            ("ssh://me@host", false),
            ("/var/run/docker.sock", false),
            ("", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(parse_docker_host(raw).is_ok(), ok, "{raw}");
        }
    }
}

/// Fuzzing the parser of `DOCKER_HOST`: whatever comes in, it answers Ok or an error, never
/// panics, and what it accepts is shown as one of the schemes it takes.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn docker_hosts(raw in "\\PC{0,40}|(unix|tcp|http|ssh|npipe)://\\PC{0,30}") {
            if let Ok(host) = parse_docker_host(&raw) {
                let shown = host.to_string();
                prop_assert!(shown.starts_with("unix:///") || shown.starts_with("tcp://")
                    || shown.starts_with("http://"));
            }
        }
    }
}
