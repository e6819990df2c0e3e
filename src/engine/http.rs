//! The calls made by hand, without bollard: one HTTP/1.1 request on a connection of its own
//! (Unix socket, TCP or TLS), the engine's error message read from a reply, and the paths and
//! queries such a call is made of.

use std::sync::Arc;

use crate::config::DockerHost;
use crate::errors::error_chain;

/// `path` (with its query) under the API version `prefix` (`/v1.45`), or `None` when it
/// carries a version already.
pub(super) fn versioned_path(path: &str, prefix: &str) -> Option<String> {
    let has_version = path
        .strip_prefix("/v")
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if has_version {
        None
    } else if path.starts_with('/') {
        Some(format!("{prefix}{path}"))
    } else {
        Some(format!("{prefix}/{path}"))
    }
}

/// Sends `method path` with an empty body to the engine on a connection of its own, and
/// returns the status and the whole body.
pub(super) async fn raw_request(
    host: &DockerHost,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    json: Option<bytes::Bytes>,
) -> std::io::Result<(u16, bytes::Bytes)> {
    let authority = |url: &str| {
        url.split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string()
    };
    match (host, tls) {
        (DockerHost::Unix(socket), _) => {
            exchange(
                tokio::net::UnixStream::connect(socket).await?,
                method,
                path,
                json,
            )
            .await
        }
        (DockerHost::Tls { url, .. }, Some(config)) => {
            let authority = authority(url);
            // The name the engine's certificate must carry: the host, without port or [].
            let name = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = rustls_pki_types::ServerName::try_from(name)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tcp = tokio::net::TcpStream::connect(&authority).await?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await?;
            exchange(stream, method, path, json).await
        }
        (DockerHost::Tcp(url) | DockerHost::Tls { url, .. }, _) => {
            exchange(
                tokio::net::TcpStream::connect(authority(url)).await?,
                method,
                path,
                json,
            )
            .await
        }
    }
}

/// One HTTP/1.1 request and its reply on `stream`; the reply is read as far as it says
/// (length or chunks), even if the other side keeps the connection open.
pub(super) async fn exchange(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    method: &str,
    path: &str,
    json: Option<bytes::Bytes>,
) -> std::io::Result<(u16, bytes::Bytes)> {
    use http_body_util::{BodyExt, Either, Empty, Full, Limited};
    // A list of thousands of containers stays well below this; more is not the engine.
    const LIMIT: usize = 64 * 1024 * 1024;
    let io_err = |e: Box<dyn std::error::Error + Send + Sync>| {
        std::io::Error::other(error_chain(e.as_ref()))
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| io_err(e.into()))?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "docker");
    let request = match json {
        None => request.body(Either::Left(Empty::<bytes::Bytes>::new())),
        Some(json) => request
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Either::Right(Full::new(json))),
    }
    .map_err(|e| io_err(e.into()))?;
    let reply = sender
        .send_request(request)
        .await
        .map_err(|e| io_err(e.into()));
    let result = match reply {
        Ok(reply) => {
            let status = reply.status().as_u16();
            Limited::new(reply.into_body(), LIMIT)
                .collect()
                .await
                .map(|body| (status, body.to_bytes()))
                .map_err(io_err)
        }
        Err(e) => Err(e),
    };
    // The connection is ours alone: done with it once the reply is in.
    connection.abort();
    result
}

/// `%XX` for every byte outside the URL's unreserved characters.
pub(super) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The engine's `{"message": ...}`, or the body as it is (a proxy's page, a chunked body).
pub(super) fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let json = match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if a < b => &text[a..=b],
        _ => "",
    };
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_is_read_as_far_as_it_says_even_if_the_connection_stays_open() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let engine = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut request = [0u8; 256];
            let n = theirs.read(&mut request).await.expect("request");
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("POST /v1.41/"));
            let body = r#"{"message":"injected failure"}"#;
            let reply = format!(
                "HTTP/1.1 500 Injected\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            theirs.write_all(reply.as_bytes()).await.expect("reply");
            // Held open, as a proxy may.
            theirs
        });
        let (status, body) = exchange(ours, "POST", "/v1.41/containers/x/start", None)
            .await
            .expect("a reply");
        assert_eq!(status, 500);
        assert_eq!(error_message(&body), "injected failure");
        drop(engine.await);
    }

    #[test]
    fn list_filters_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"{"status":["exited"]}"#),
            "%7B%22status%22%3A%5B%22exited%22%5D%7D"
        );
    }

    #[test]
    fn error_messages_fall_back_to_the_text() {
        assert_eq!(
            error_message(b"<html>403 Forbidden</html>\n"),
            "<html>403 Forbidden</html>"
        );
        assert_eq!(error_message(b""), "");
    }

    #[test]
    fn paths_get_the_negotiated_version_once() {
        let cases = [
            (
                "/containers/json?all=true",
                Some("/v1.45/containers/json?all=true"),
            ),
            ("/events", Some("/v1.45/events")),
            ("containers/x/json", Some("/v1.45/containers/x/json")),
            ("/v1.41/containers/json", None),
            ("/v1.45?x=1", None),
            // Not a version: a container or image whose name starts with v.
            ("/vx.1/json", Some("/v1.45/vx.1/json")),
            ("/v1/json", Some("/v1.45/v1/json")),
            ("/volumes", Some("/v1.45/volumes")),
        ];
        for (path, want) in cases {
            assert_eq!(versioned_path(path, "/v1.45").as_deref(), want, "{path}");
        }
    }
}
