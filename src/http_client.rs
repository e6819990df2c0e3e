//! An HTTP/1.1 client for the calls healthther makes to the world: the notifications' webhooks
//! and the two-way channels' answers. Each request goes on a connection of its own to an
//! `http://` or `https://` URL, with TLS checked against the bundled web roots, and through the
//! proxy the environment names, as curl reads it (see [`proxy`]). Redirects are not followed:
//! the status is the caller's. No connection is kept between requests, so nothing stays in
//! memory between messages, and a client is two durations.
//!
//! No error says the URL: it may hold a token (Slack, Discord and Telegram put theirs in the
//! path), and none says the proxy's, which may hold its password.

pub mod proxy;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::Instant;

use proxy::Route;

/// What every request says it is.
const USER_AGENT: &str = concat!("healthther/", env!("CARGO_PKG_VERSION"));

/// Why a request failed. Its words never hold the URL nor the proxy's.
#[derive(Debug, Error)]
pub enum Error {
    #[error("not an http:// or https:// URL")]
    Url,
    #[error("a method, header name or header value that HTTP does not allow")]
    Request,
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    #[error("no connection within {}s", .0.as_secs())]
    ConnectTimeout(Duration),
    #[error("TLS")]
    Tls(#[source] std::io::Error),
    #[error("HTTP")]
    Http(#[source] hyper::Error),
    #[error("no answer in time")]
    Timeout,
    #[error("cannot connect to the proxy")]
    ProxyConnect(#[source] std::io::Error),
    #[error("TLS with the proxy")]
    ProxyTls(#[source] std::io::Error),
    #[error("the proxy")]
    Tunnel(#[source] std::io::Error),
    #[error("the proxy refused the tunnel: it answered {0} to CONNECT")]
    TunnelRefused(u16),
    #[error("the proxy the environment names is a SOCKS proxy, which healthther does not speak")]
    Socks,
}

/// How long a request may take. A client holds no connection and no state: it is made where
/// it is needed, for nothing.
#[derive(Debug, Clone)]
pub struct Client {
    /// The whole request, from connecting to the body's last byte; `None` for none (a stream
    /// stays open; its reader bounds each read).
    timeout: Option<Duration>,
    /// Connecting: the TCP connection, the proxy's tunnel and the TLS handshake.
    connect_timeout: Duration,
    /// The tests' own roots and proxies; `None`: the web roots and the environment's proxies.
    tls: Option<Arc<rustls::ClientConfig>>,
    proxies: Option<Arc<proxy::Matcher>>,
}

impl Client {
    pub const fn new(timeout: Option<Duration>, connect_timeout: Duration) -> Client {
        Client {
            timeout,
            connect_timeout,
            tls: None,
            proxies: None,
        }
    }

    /// Sends `method url` with `headers` and `body`; the answer, its body still to be read.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Response, Error> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        within(deadline, self.start(method, url, headers, body, deadline)).await
    }

    async fn start(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Response, Error> {
        let target = Target::parse(url)?;
        let route = proxy::route(self.proxies(), target.tls, &target.connect)?;
        let request = build(method, &target, &route, headers, body)?;
        let stream = self.connect(&target, &route).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(Error::Http)?;
        let connection = Driving(tokio::spawn(connection));
        let answer = sender.send_request(request).await.map_err(Error::Http)?;
        Ok(Response {
            status: answer.status().as_u16(),
            body: answer.into_body(),
            deadline,
            _sender: sender,
            _connection: connection,
        })
    }

    /// A connection to the target, straight or through the route's proxy, with TLS to the
    /// target for `https`.
    async fn connect(&self, target: &Target, route: &Route) -> Result<Box<dyn Io>, Error> {
        let connecting = async {
            match route {
                Route::Direct => {
                    let tcp = TcpStream::connect((target.host.as_str(), target.port))
                        .await
                        .map_err(Error::Connect)?;
                    self.tls_if(target, tcp).await
                }
                Route::Proxy(p) => {
                    let tcp = TcpStream::connect((p.host.as_str(), p.port))
                        .await
                        .map_err(Error::ProxyConnect)?;
                    let stream: Box<dyn Io> = match p.tls {
                        true => Box::new(
                            tls(self.tls_config(), &p.host, tcp)
                                .await
                                .map_err(Error::ProxyTls)?,
                        ),
                        false => Box::new(tcp),
                    };
                    if !target.tls {
                        return Ok(stream);
                    }
                    let tunnel = proxy::tunnel(stream, &target.connect, p.auth.as_deref()).await?;
                    self.tls_if(target, tunnel).await
                }
                Route::Socks => Err(Error::Socks),
            }
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .unwrap_or(Err(Error::ConnectTimeout(self.connect_timeout)))
    }

    /// `stream`, through TLS to the target when it is `https`.
    async fn tls_if<S: Io + 'static>(
        &self,
        target: &Target,
        stream: S,
    ) -> Result<Box<dyn Io>, Error> {
        Ok(match target.tls {
            true => Box::new(
                tls(self.tls_config(), &target.host, stream)
                    .await
                    .map_err(Error::Tls)?,
            ),
            false => Box::new(stream),
        })
    }

    fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone().unwrap_or_else(web_tls)
    }

    fn proxies(&self) -> &proxy::Matcher {
        match &self.proxies {
            Some(m) => m,
            None => proxy::from_env(),
        }
    }

    /// This client, with TLS trusting `config`'s roots instead of the web's.
    #[cfg(test)]
    pub(crate) fn trusting(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        self.tls = Some(config);
        self
    }

    /// This client, with the proxies of `proxies` instead of the environment's.
    #[cfg(test)]
    pub(crate) fn proxied(mut self, proxies: proxy::Matcher) -> Client {
        self.proxies = Some(Arc::new(proxies));
        self
    }
}

/// The request for `target` by `route`: the caller's headers, and those a client adds where
/// the caller gives none.
fn build(
    method: &str,
    target: &Target,
    route: &Route,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<hyper::Request<Full<Bytes>>, Error> {
    let mut request = hyper::Request::builder()
        .method(hyper::Method::from_bytes(method.as_bytes()).map_err(|_| Error::Request)?);
    // Plain HTTP through a proxy names the whole URL (absolute form) and carries the
    // proxy's credentials; HTTPS goes through a tunnel the proxy cannot read.
    request = match route {
        Route::Proxy(p) if !target.tls => {
            let uri = format!("http://{}{}", target.host_header, target.path);
            let request = request.uri(uri);
            match &p.auth {
                Some(auth) => request.header(header::PROXY_AUTHORIZATION, auth.as_str()),
                None => request,
            }
        }
        _ => request.uri(target.path.as_str()),
    };
    let given = |name: &HeaderName| {
        headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name.as_str()))
    };
    request = request.header(header::HOST, target.host_header.as_str());
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| Error::Request)?;
        let value = HeaderValue::from_bytes(v.as_bytes()).map_err(|_| Error::Request)?;
        request = request.header(name, value);
    }
    if let (Some(basic), false) = (&target.basic, given(&header::AUTHORIZATION)) {
        request = request.header(header::AUTHORIZATION, basic.as_str());
    }
    if !given(&header::USER_AGENT) {
        request = request.header(header::USER_AGENT, USER_AGENT);
    }
    if !given(&header::ACCEPT) {
        request = request.header(header::ACCEPT, "*/*");
    }
    // No connection is kept: the server may close it once it has answered.
    request
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| Error::Request)
}

/// An answer: its status, and its body to be read, within the request's time.
pub struct Response {
    status: u16,
    body: hyper::body::Incoming,
    deadline: Option<Instant>,
    /// Held until the body is read: the connection is the answer's alone.
    _sender: SendRequest<Full<Bytes>>,
    _connection: Driving,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The next piece of the body as it comes; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let body = &mut self.body;
        within(self.deadline, async move {
            while let Some(frame) = body.frame().await {
                // Trailers and empty pieces carry nothing a caller reads.
                match frame.map_err(Error::Http)?.into_data() {
                    Ok(data) if !data.is_empty() => return Ok(Some(data)),
                    _ => {}
                }
            }
            Ok(None)
        })
        .await
    }

    /// The body, its first `most` bytes where it is longer: what is past them is not read.
    pub async fn bytes(mut self, most: usize) -> Result<Bytes, Error> {
        let mut body = Vec::new();
        while body.len() < most {
            let Some(chunk) = self.chunk().await? else {
                break;
            };
            let room = most - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(body.into())
    }
}

/// The task that drives a connection, ended with the answer: a stream the server holds open
/// must not outlive its reader.
struct Driving(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for Driving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The client side of TLS to the world: a server's certificate checked against the bundled
/// web roots (Mozilla's, from webpki-roots: the scratch image has no CA directory), HTTP/1.1
/// offered. Made at its first use, then shared.
pub fn web_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let make = || {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // ring's default provider has suites for TLS 1.2 and 1.3, the safe defaults: the only
        // error this returns, no suite for the versions, cannot happen.
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    Arc::clone(CONFIG.get_or_init(make))
}

/// TLS to `host` (its name sent, and checked against the certificate) over `stream`.
async fn tls<S: Io>(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    stream: S,
) -> std::io::Result<tokio_rustls::client::TlsStream<S>> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
}

/// What a connection carries: TCP, TLS over it, TLS in a proxy's tunnel.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Where a URL points, as the request needs it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    /// The name or address to connect to, an IPv6 address without brackets.
    host: String,
    port: u16,
    /// `Host`: the host, and the port unless it is the scheme's.
    host_header: String,
    /// `host:port`, as CONNECT names it.
    connect: String,
    /// The path and query, as the URL has them (percent-encoded).
    path: String,
    /// `Basic …` from the URL's `user:password@`, as browsers and curl send it.
    basic: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        use base64::Engine as _;
        let url = url::Url::parse(url).map_err(|_| Error::Url)?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(Error::Url),
        };
        let (shown, host) = match url.host().ok_or(Error::Url)? {
            url::Host::Domain(d) => (d.to_string(), d.to_string()),
            url::Host::Ipv4(a) => (a.to_string(), a.to_string()),
            url::Host::Ipv6(a) => (format!("[{a}]"), a.to_string()),
        };
        let port = url.port_or_known_default().ok_or(Error::Url)?;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        // As browsers and curl: the URL's `user:password@`, percent-decoded, as Basic.
        let basic = (!url.username().is_empty() || url.password().is_some()).then(|| {
            let decoded = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let raw = format!(
                "{}:{}",
                decoded(url.username()),
                decoded(url.password().unwrap_or(""))
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        Ok(Target {
            tls,
            host_header: match url.port() {
                Some(p) => format!("{shown}:{p}"),
                None => shown.clone(),
            },
            connect: format!("{shown}:{port}"),
            host,
            port,
            path,
            basic,
        })
    }
}

/// `work`, by `deadline` where there is one.
async fn within<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, work)
            .await
            .unwrap_or(Err(Error::Timeout)),
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::errors::error_chain;

    const SECRET: &str = "SeCrEt";

    fn sending() -> Client {
        Client::new(Some(Duration::from_secs(5)), Duration::from_secs(5))
    }

    /// No proxy, whatever the environment of the test run names.
    fn direct(c: Client) -> Client {
        c.proxied(proxy::Matcher::builder().build())
    }

    /// Reads a request's head, and its body as its Content-Length says.
    async fn read_request(conn: &mut (impl AsyncReadExt + Unpin)) -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                break;
            }
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).to_string();
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        let _ = conn.read_exact(&mut body).await;
        head + &String::from_utf8_lossy(&body)
    }

    /// Serves one connection: hands back what came, answers `answer` (written in the pieces
    /// given, `pause` apart), and keeps the connection open a while.
    async fn server(
        answer: Vec<&'static str>,
        pause: Duration,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let request = read_request(&mut conn).await;
            for piece in answer {
                conn.write_all(piece.as_bytes()).await.expect("answer");
                tokio::time::sleep(pause).await;
            }
            request
        });
        (port, served)
    }

    #[tokio::test]
    async fn a_post_carries_its_headers_and_body_and_the_status_is_read() {
        let (port, served) = server(
            vec!["HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello"],
            Duration::ZERO,
        )
        .await;
        let url = format!("http://u:p%40ss@127.0.0.1:{port}/hook/a%20b?x=1&y=%2F#frag");
        let headers = [
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Title".to_string(), "nodo_1 revivé".to_string()),
        ];
        let resp = direct(sending())
            .request("POST", &url, &headers, b"{\"a\":1}".to_vec())
            .await
            .expect("an answer");
        assert_eq!(resp.status(), 201);
        assert_eq!(&resp.bytes(100).await.expect("the body")[..], b"hello");
        let request = served.await.expect("served");
        let lower = request.to_ascii_lowercase();
        assert!(
            request.starts_with("POST /hook/a%20b?x=1&y=%2F HTTP/1.1\r\n"),
            "{request}"
        );
        for line in [
            format!("host: 127.0.0.1:{port}"),
            "content-type: application/json".into(),
            format!("user-agent: healthther/{}", env!("CARGO_PKG_VERSION")),
            // `u:p@ss`
            "authorization: basic dtpwqhnz".into(),
            "content-length: 7".into(),
        ] {
            assert!(
                lower.contains(&format!("\r\n{line}\r\n")),
                "{line}: {request}"
            );
        }
        assert!(request.contains("title: nodo_1 revivé\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    }

    /// A GET to a server that answers `answer` at once.
    async fn get_answered(answer: &'static str) -> (Response, tokio::task::JoinHandle<String>) {
        let (port, served) = server(vec![answer], Duration::ZERO).await;
        let resp = direct(sending())
            .request("GET", &format!("http://127.0.0.1:{port}/"), &[], vec![])
            .await
            .expect("an answer");
        (resp, served)
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_not_followed() {
        let (resp, served) = get_answered(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status(), 302);
        served.await.expect("served");
    }

    #[tokio::test]
    async fn a_stream_is_read_as_it_comes_and_a_long_body_is_cut() {
        let (port, _served) = server(
            vec![
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n",
                "7\r\nsecond\n\r\n",
                "0\r\n\r\n",
            ],
            Duration::from_millis(300),
        )
        .await;
        let listening = direct(Client::new(None, Duration::from_secs(5)));
        let url = format!("http://127.0.0.1:{port}/t/json");
        let mut resp = listening
            .request("GET", &url, &[], vec![])
            .await
            .expect("an answer");
        let first = resp.chunk().await.expect("a piece");
        assert_eq!(first.as_deref(), Some(&b"first\n"[..]));
        let second = resp.chunk().await.expect("a piece");
        assert_eq!(second.as_deref(), Some(&b"second\n"[..]));
        assert_eq!(resp.chunk().await.expect("the end"), None);

        let (resp, _served) =
            get_answered("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789").await;
        assert_eq!(&resp.bytes(4).await.expect("a body")[..], b"0123");
    }

    #[tokio::test]
    async fn the_whole_request_is_bounded_by_its_timeout_the_connection_by_its_own() {
        // Answers the head, then holds the body back.
        let (port, _served) = server(
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"],
            Duration::from_secs(30),
        )
        .await;
        let quick = direct(Client::new(
            Some(Duration::from_millis(500)),
            Duration::from_secs(5),
        ));
        let url = format!("http://127.0.0.1:{port}/");
        let resp = quick
            .request("GET", &url, &[], vec![])
            .await
            .expect("a head");
        let started = std::time::Instant::now();
        assert!(matches!(resp.bytes(100).await, Err(Error::Timeout)));
        assert!(started.elapsed() < Duration::from_secs(3));

        // A proxy that takes the connection and never answers CONNECT: connecting (the tunnel
        // included) is bounded, although the request as a whole is not.
        let hole = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hole_port = hole.local_addr().expect("address").port();
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = hole.accept().await {
                held.push(conn);
            }
        });
        let listening = Client::new(None, Duration::from_millis(300)).proxied(
            proxy::Matcher::builder()
                .all(format!("http://127.0.0.1:{hole_port}"))
                .build(),
        );
        let e = listening
            .request("GET", "https://ntfy.example/t/json", &[], vec![])
            .await
            .map(drop);
        assert!(matches!(e, Err(Error::ConnectTimeout(_))), "{e:?}");
    }

    #[tokio::test]
    async fn errors_never_say_the_url_or_the_proxys() {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let url = format!("http://u:Pw{SECRET}@127.0.0.1:{port}/bot1:{SECRET}/x?token={SECRET}");
        let proxied = format!("http://pu:Pw{SECRET}@127.0.0.1:{port}");
        for client in [
            direct(sending()),
            sending().proxied(proxy::Matcher::builder().all(proxied).build()),
        ] {
            let e = client
                .request("POST", &url, &[], vec![])
                .await
                .map(drop)
                .unwrap_err();
            let text = error_chain(&e);
            assert!(text.contains("connect"), "{text}");
            assert!(
                !text.contains(SECRET) && !text.contains("127.0.0.1"),
                "{text}"
            );
        }
        for bad in ["ftp://h/x", "not a url", "http://"] {
            let e = direct(sending())
                .request("GET", bad, &[], vec![])
                .await
                .map(drop);
            assert!(matches!(e, Err(Error::Url)), "{bad}: {e:?}");
        }
    }

    /// A self-signed certificate for `localhost`, and a client config that trusts only it.
    fn certificate() -> (rustls::ServerConfig, Arc<rustls::ClientConfig>) {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a cert");
        let provider = || Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).expect("a root");
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, Arc::new(client))
    }

    /// An HTTPS server for `localhost` that answers 200 to each connection; the names clients
    /// sent (SNI) and the request lines they sent.
    async fn https_server() -> (
        u16,
        Arc<rustls::ClientConfig>,
        Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let (server, client) = certificate();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let Ok(mut conn) = acceptor.accept(conn).await else {
                        return;
                    };
                    let sni = conn.get_ref().1.server_name().unwrap_or("").to_string();
                    let request = read_request(&mut conn).await;
                    let line = request.lines().next().unwrap_or("").to_string();
                    log.lock().expect("log").push(format!("{sni} {line}"));
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (port, client, seen)
    }

    #[tokio::test]
    async fn https_sends_the_name_and_checks_the_certificate() {
        let (port, trusting, seen) = https_server().await;
        let url = format!("https://localhost:{port}/hook");
        let resp = direct(sending())
            .trusting(trusting)
            .request("POST", &url, &[], b"x".to_vec())
            .await
            .expect("an answer");
        assert_eq!(resp.status(), 200);
        assert_eq!(&resp.bytes(10).await.expect("body")[..], b"ok");
        assert_eq!(
            seen.lock().expect("log").clone(),
            ["localhost POST /hook HTTP/1.1"]
        );
        // The web's roots do not know a self-signed certificate.
        let e = direct(sending())
            .request("POST", &url, &[], vec![])
            .await
            .map(drop)
            .unwrap_err();
        let text = error_chain(&e);
        assert!(
            text.starts_with("TLS: ") && text.contains("certificate"),
            "{text}"
        );
    }

    /// A forward proxy as the RFCs say: plain requests relayed as they come (their request
    /// lines kept), CONNECT tunnels opened; each head it read is kept.
    async fn forward_proxy() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let head = read_request(&mut conn).await;
                    log.lock().expect("log").push(head.clone());
                    let line = head.lines().next().unwrap_or("").to_string();
                    let mut words = line.split(' ');
                    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    if method == "CONNECT" {
                        let Ok(mut up) = tokio::net::TcpStream::connect(
                            target.replace("localhost", "127.0.0.1"),
                        )
                        .await
                        else {
                            return;
                        };
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await;
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                    } else {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nrelayed")
                            .await;
                    }
                });
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn a_proxy_gets_plain_http_in_absolute_form_and_https_through_a_tunnel() {
        let (proxy_port, proxied) = forward_proxy().await;
        let (port, trusting, seen) = https_server().await;
        let proxies = proxy::Matcher::builder()
            .all(format!("http://pu:pw@127.0.0.1:{proxy_port}"))
            .no("direct.example".to_string())
            .build();
        let client = sending().trusting(trusting).proxied(proxies);

        let resp = client
            .request(
                "POST",
                "http://hooks.example:8080/a?b=1",
                &[],
                b"x".to_vec(),
            )
            .await
            .expect("an answer");
        assert_eq!(&resp.bytes(100).await.expect("body")[..], b"relayed");
        let url = format!("https://localhost:{port}/hook");
        let resp = client
            .request("POST", &url, &[], b"x".to_vec())
            .await
            .expect("an answer");
        assert_eq!(resp.status(), 200);
        drop(resp);

        let heads = proxied.lock().expect("log").clone();
        assert_eq!(heads.len(), 2, "{heads:?}");
        // "pu:pw"
        let auth = "\r\nproxy-authorization: basic chu6chc=\r\n";
        assert!(
            heads[0].starts_with("POST http://hooks.example:8080/a?b=1 HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[0].to_ascii_lowercase().contains(auth), "{}", heads[0]);
        assert!(
            heads[1].starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
            "{}",
            heads[1]
        );
        assert!(heads[1].to_ascii_lowercase().contains(auth), "{}", heads[1]);
        // Through the tunnel: TLS to the real host, by its name.
        assert_eq!(
            seen.lock().expect("log").clone(),
            ["localhost POST /hook HTTP/1.1"]
        );

        // NO_PROXY's hosts go straight (and this one does not resolve).
        let e = client
            .request("GET", "http://direct.example/", &[], vec![])
            .await
            .map(drop);
        assert!(
            matches!(e, Err(Error::Connect(_) | Error::ConnectTimeout(_))),
            "{e:?}"
        );
        assert_eq!(proxied.lock().expect("log").len(), 2);
    }
}
