//! One probe carried out: a TCP connection, and for HTTP one `GET` over it (through TLS for
//! `https`), the status read and nothing more. Bounded as a whole by the probe's timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;

use super::{http, Failure, Kind, ProbeSpec};
use crate::errors::error_chain;

/// The most of an answer a probe takes in: any interim answers, the status line and the
/// headers must fit, the body is never read. Its buffer stops there, so a huge or endless answer costs no memory.
const MOST_READ: usize = 64 * 1024;
/// The first read of an answer, enough for most heads.
const FIRST_READ: usize = 1024;
/// The wait before reading on once a head is partial: see [`http`].
const PARTIAL_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
/// The longest error text a failure carries: it goes into an audit record and a status row.
const LONGEST_TEXT: usize = 200;

/// Where a probe may connect: the container's own addresses. A label is its author's, and
/// must not make healthther connect anywhere else from where it runs (the host's loopback, a
/// socket proxy, another container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The container, for the failure that names it.
    pub container: String,
    pub addresses: Vec<IpAddr>,
}

/// Probes `host` (an IP address, v4 or v6, or a name to resolve) on `spec.port` as `spec.kind`
/// says, at those of its addresses that `allowed` has. The whole probe, resolving included,
/// ends by `spec.timeout`.
pub async fn run(spec: &ProbeSpec, host: &str, allowed: &Allowed) -> Result<(), Failure> {
    match tokio::time::timeout(spec.timeout, probe(spec, host, allowed)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout(spec.timeout)),
    }
}

async fn probe(spec: &ProbeSpec, host: &str, allowed: &Allowed) -> Result<(), Failure> {
    // `[::1]` as in a URL is `::1`.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let stream = connect(host, spec.port, allowed).await?;
    match &spec.kind {
        // Open is healthy; the stream is dropped, so closed, here.
        Kind::Tcp => Ok(()),
        Kind::Http {
            tls: false, path, ..
        } => http(stream, host, spec.port, path).await,
        // Boxed: the TLS handshake's state is large (2 KiB), and inline it would make every
        // probe's task that large, plain HTTP and TCP too.
        Kind::Http {
            tls: true,
            verify,
            path,
        } => Box::pin(https(stream, host, spec.port, *verify, path)).await,
    }
}

/// `GET path` through TLS on `stream`: see [`http`] and [`tls_config`].
async fn https(
    stream: TcpStream,
    host: &str,
    port: u16,
    verify: bool,
    path: &str,
) -> Result<(), Failure> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| other(&format!("TLS: {host} is no server name: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls_config(verify))
        .connect(name, stream)
        .await
        .map_err(|e| other(&format!("TLS: {}", error_chain(&e))))?;
    http(stream, host, port, path).await
}

/// A connection to the first of `host`'s addresses that takes one, among the allowed.
async fn connect(host: &str, port: u16, allowed: &Allowed) -> Result<TcpStream, Failure> {
    let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Failure::Resolve {
                host: host.to_string(),
                error: short(&error_chain(&e)),
            })?
            .collect(),
    };
    // A name may resolve to several (a compose service's replicas): only its own count.
    let addrs: Vec<SocketAddr> = resolved
        .iter()
        .filter(|a| allowed.addresses.contains(&a.ip()))
        .copied()
        .collect();
    if addrs.is_empty() && !resolved.is_empty() {
        return Err(Failure::NotTheContainer {
            host: host.to_string(),
            container: allowed.container.clone(),
        });
    }
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        None => Failure::Resolve {
            host: host.to_string(),
            error: "no address".into(),
        },
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        Some(e) => other(&format!("cannot connect: {}", error_chain(&e))),
    })
}

/// `GET path` on `stream`; healthy on 2xx and 3xx. Redirects are not followed: a redirect says
/// the server answers. Only the answer's head is read (see [`MOST_READ`]), never its body.
async fn http<S>(mut stream: S, host: &str, port: u16, path: &str) -> Result<(), Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |e: std::io::Error| other(&format!("HTTP: {}", error_chain(&e)));
    let request = http::request(host, port, path)?;
    stream.write_all(&request).await.map_err(failed)?;
    // Through TLS, the request is on its way only once flushed.
    stream.flush().await.map_err(failed)?;
    // Most heads fit in the first read; one that does not gets a larger buffer, up to the most.
    let mut buf = request;
    buf.clear();
    buf.resize(FIRST_READ, 0);
    // What came is `buf[..len]`; the head still to be judged begins at `start`, past the
    // interim answers passed over, so that passing one over moves no bytes.
    let mut start = 0;
    let mut len = 0;
    // Interim answers passed over: they count towards the most, or a server sending them
    // without end would be read until the timeout.
    let mut skipped = 0;
    // Bytes came since the head was last parsed.
    let mut unparsed = false;
    loop {
        if skipped + (len - start) >= MOST_READ {
            if unparsed && judge(&buf[..len], &mut start, &mut skipped)? {
                return Ok(());
            }
            return Err(http::failed(http::TOO_LARGE));
        }
        if len == buf.len() {
            if start > 0 {
                // Full, with interim answers at its start: the partial head they leave goes
                // to the start. Each byte moves at most once, as the next move needs that
                // head whole and passed over.
                buf.copy_within(start..len, 0);
                #[cfg(test)]
                tally::count(|t| t.moved += len - start);
                len -= start;
                start = 0;
            } else {
                buf.resize((len * 4).min(MOST_READ), 0);
            }
        }
        // No further than the most a head may take, counting what was passed over.
        let end = buf.len().min(start + MOST_READ - skipped);
        let read = stream.read(&mut buf[len..end]).await.map_err(failed)?;
        #[cfg(test)]
        tally::count(|t| t.reads += 1);
        if read == 0 {
            if unparsed && judge(&buf[..len], &mut start, &mut skipped)? {
                return Ok(());
            }
            return Err(http::failed("connection closed before message completed"));
        }
        // Parsed again from its start only when that can change the verdict: when a line
        // ended (httparse takes a bare LF as a line's end, and a head ends with one), or when
        // these are its first bytes (what is no HTTP at all fails at once). A head is then
        // parsed at most once a line, and httparse takes no more than 100 header lines: a
        // server sending its head a byte at a time costs a parse a line, not one a byte.
        let first = start == len;
        let ended = buf[len..len + read].contains(&b'\n');
        len += read;
        if !(first || ended) {
            unparsed = true;
        } else if judge(&buf[..len], &mut start, &mut skipped)? {
            return Ok(());
        } else {
            unparsed = false;
        }
        if start < len && len < end {
            // The head is partial, and this read took all there was (it filled less than its
            // room), so it may have been a trickle: a moment's wait lets the kernel gather
            // what else comes, so a server sending a byte per segment wakes the probe at most
            // every few milliseconds, not once a byte. A head that comes in one read, or
            // that was all there already, never waits; the probe's timeout bounds the whole.
            tokio::time::sleep(PARTIAL_WAIT).await;
        }
    }
}

/// What the heads in `buf[*start..]` say: interim answers passed over (`start` and `skipped`
/// moved past them), then true when the final one is healthy, false while it is partial; a
/// status that is not healthy, or no HTTP, fails.
fn judge(buf: &[u8], start: &mut usize, skipped: &mut usize) -> Result<bool, Failure> {
    loop {
        #[cfg(test)]
        tally::count(|t| t.parses += 1);
        match http::head(&buf[*start..])? {
            http::Head::Partial => return Ok(false),
            http::Head::Interim(used) => {
                *start += used;
                *skipped += used;
            }
            http::Head::Status(200..=399) => return Ok(true),
            http::Head::Status(code) => return Err(Failure::Status(code)),
        }
    }
}

/// What probes did on this thread, for the tests to bound: reads, parses of a head, bytes
/// moved within the buffer.
#[cfg(test)]
mod tally {
    use std::cell::Cell;

    #[derive(Debug, Default, Clone, Copy)]
    pub struct Work {
        pub reads: usize,
        pub parses: usize,
        pub moved: usize,
    }

    thread_local! {
        static WORK: Cell<Work> = Cell::new(Work::default());
    }

    pub fn count(f: impl FnOnce(&mut Work)) {
        WORK.with(|w| {
            let mut work = w.get();
            f(&mut work);
            w.set(work);
        });
    }

    /// What was done so far on this thread, and the tally back to zero.
    pub fn take() -> Work {
        WORK.with(Cell::take)
    }
}

/// The client side of TLS for a probe: the certificate checked against the bundled web roots
/// when `verify` (as for a webhook), else any certificate taken (the handshake's signatures
/// are still checked).
fn tls_config(verify: bool) -> Arc<rustls::ClientConfig> {
    static TRUSTING: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if verify {
        return crate::http_client::web_tls();
    }
    let make = || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            // ring's default provider has suites for TLS 1.2 and 1.3, the safe defaults: the
            // only error this returns, no suite for the versions, cannot happen.
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        // The probe speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    Arc::clone(TRUSTING.get_or_init(make))
}

/// Takes any certificate, as `healthther.probe-tls-verify` unset asks: a probe wants to know
/// the server answers, and a container's certificate is most often self-signed or for a name
/// the probe does not use. The handshake's signatures are still verified, with ring.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn other(text: &str) -> Failure {
    Failure::Other(short(text))
}

/// One line of at most `LONGEST_TEXT` characters.
fn short(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(LONGEST_TEXT) {
        None => line,
        Some((cut, _)) => format!("{}…", &line[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A container at the loopback addresses: where the tests' servers listen.
    fn local() -> Allowed {
        Allowed {
            container: "web".into(),
            addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        }
    }

    fn spec(kind: Kind, port: u16, timeout: Duration) -> ProbeSpec {
        ProbeSpec {
            kind,
            host: None,
            port,
            interval: Duration::from_secs(10),
            timeout,
            retries: 3,
            start_period: Duration::ZERO,
        }
    }

    fn http(port: u16) -> ProbeSpec {
        https_or_http(false, false, port)
    }

    fn https_or_http(tls: bool, verify: bool, port: u16) -> ProbeSpec {
        let kind = Kind::Http {
            tls,
            verify,
            path: "/healthz?x=1".into(),
        };
        spec(kind, port, Duration::from_secs(5))
    }

    /// A port nothing listens on: bound, then let go.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    }

    /// Serves one connection with `answer` after reading the request head, which it hands back.
    async fn answering(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let request = read_head(&mut conn).await;
            conn.write_all(answer.as_bytes()).await.expect("answer");
            request
        });
        (port, served)
    }

    async fn read_head(conn: &mut (impl AsyncReadExt + Unpin)) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy_and_the_request_is_a_plain_get() {
        let (port, served) = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        assert_eq!(run(&http(port), "127.0.0.1", &local()).await, Ok(()));
        let request = served.await.expect("server").to_ascii_lowercase();
        assert!(
            request.starts_with("get /healthz?x=1 http/1.1\r\n"),
            "{request}"
        );
        for header in [
            format!("host: 127.0.0.1:{port}\r\n"),
            "connection: close\r\n".into(),
            "user-agent: healthther\r\n".into(),
        ] {
            assert!(request.contains(&header), "{header:?} in {request}");
        }
    }

    #[tokio::test]
    async fn a_redirect_is_healthy_and_not_followed() {
        let (port, served) =
            answering("HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n").await;
        assert_eq!(run(&http(port), "127.0.0.1", &local()).await, Ok(()));
        served.await.expect("server");
    }

    #[tokio::test]
    async fn a_5xx_answer_fails_with_its_status() {
        let (port, _served) =
            answering("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(
            run(&http(port), "127.0.0.1", &local()).await,
            Err(Failure::Status(500))
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_by_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let _held = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            read_head(&mut conn).await;
            std::future::pending::<()>().await;
            drop(conn);
        });
        let timeout = Duration::from_millis(500);
        let mut probe = http(port);
        probe.timeout = timeout;
        let began = Instant::now();
        assert_eq!(
            run(&probe, "127.0.0.1", &local()).await,
            Err(Failure::Timeout(timeout))
        );
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let port = closed_port().await;
        assert_eq!(
            run(&http(port), "127.0.0.1", &local()).await,
            Err(Failure::Refused)
        );
        let tcp = spec(Kind::Tcp, port, Duration::from_secs(5));
        assert_eq!(
            run(&tcp, "127.0.0.1", &local()).await,
            Err(Failure::Refused)
        );
    }

    #[tokio::test]
    async fn a_connection_closed_without_an_answer_fails_saying_so() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            let (conn, _) = listener.accept().await.expect("accept");
            drop(conn);
        });
        match run(&http(port), "127.0.0.1", &local()).await {
            Err(Failure::Other(text)) => {
                assert!(text.starts_with("HTTP: "), "{text}");
                assert!(
                    !text.contains('\n') && text.chars().count() <= 201,
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// Writes `head` then `filler` over and over without end, until the probe hangs up; hands
    /// back how much it wrote.
    async fn endless(
        head: &'static str,
        filler: &'static [u8],
    ) -> (u16, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            read_head(&mut conn).await;
            let mut written = 0;
            let chunk = filler.repeat(64 * 1024 / filler.len());
            if conn.write_all(head.as_bytes()).await.is_err() {
                return written;
            }
            // 1 GiB at most, so that a test that did read on ends at last.
            while written < 1 << 30 {
                match conn.write_all(&chunk).await {
                    Ok(()) => written += chunk.len(),
                    Err(_) => break,
                }
            }
            written
        });
        (port, served)
    }

    #[tokio::test]
    async fn an_endless_answer_is_read_no_further_than_the_status() {
        // An endless body: the status is enough, the body is never read.
        let (port, served) = endless("HTTP/1.1 200 OK\r\n\r\n", b"a").await;
        assert_eq!(run(&http(port), "127.0.0.1", &local()).await, Ok(()));
        let written = served.await.expect("server");
        // What the two sockets' buffers hold, not the gigabyte.
        assert!(written < 64 << 20, "{written} bytes written");

        // An endless header: more than the 64 KiB a head may take, refused.
        let (port, served) = endless("HTTP/1.1 200 OK\r\nX-Big: ", b"a").await;
        match run(&http(port), "127.0.0.1", &local()).await {
            Err(Failure::Other(text)) => assert!(text.contains("too large"), "{text}"),
            other => panic!("{other:?}"),
        }
        let written = served.await.expect("server");
        assert!(written < 64 << 20, "{written} bytes written");
    }

    #[tokio::test]
    async fn endless_interim_answers_are_read_no_further_than_a_head() {
        // `100 Continue` after `100 Continue`: each is a whole head, but together they are an
        // answer with no end, and the probe takes in no more of an answer than 64 KiB.
        let (port, served) = endless("", b"HTTP/1.1 100 Continue\r\n\r\n").await;
        let began = Instant::now();
        match run(&http(port), "127.0.0.1", &local()).await {
            Err(Failure::Other(text)) => assert!(text.contains("too large"), "{text}"),
            other => panic!("{other:?} after {:?}", began.elapsed()),
        }
        let written = served.await.expect("server");
        assert!(written < 64 << 20, "{written} bytes written");
    }

    #[tokio::test]
    async fn a_head_trickled_a_byte_at_a_time_is_parsed_once_a_line() {
        // A hostile container sends its head a byte per TCP segment, here a 56 KiB header
        // then 2,000 bytes more of it one by one, paced so that each comes alone. Parsing all
        // of the head again after each byte would cost quadratic CPU.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let served = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().expect("accept");
            conn.set_nodelay(true).expect("nodelay");
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).expect("read") == 1 {
                request.push(byte[0]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                .expect("answer");
            conn.write_all(&[b'a'; 56 * 1024]).expect("the header");
            for _ in 0..2_000 {
                std::thread::sleep(Duration::from_micros(200));
                conn.write_all(b"a").expect("a byte");
            }
            conn.write_all(b"\r\n\r\n").expect("the end");
        });
        let mut probe = http(port);
        // The count, not the clock, is what is judged.
        probe.timeout = Duration::from_secs(60);
        tally::take();
        assert_eq!(run(&probe, "127.0.0.1", &local()).await, Ok(()));
        let work = tally::take();
        served.join().expect("server");
        // A parse for each line that ends, not for each byte.
        assert!(work.parses < 100, "{work:?}");
        // Reads wait a little once a head is partial, so what trickles in comes together.
        assert!(work.reads < 1_000, "{work:?}");
    }

    #[tokio::test]
    async fn many_interim_answers_at_once_are_passed_over_in_linear_work() {
        // 2,000 `100 Continue` (50,000 bytes, under the 64 KiB of heads) in one write, then 200.
        let answer = "HTTP/1.1 100 Continue\r\n\r\n".repeat(2_000) + "HTTP/1.1 200 OK\r\n\r\n";
        let (port, served) = answering(answer.leak()).await;
        tally::take();
        assert_eq!(run(&http(port), "127.0.0.1", &local()).await, Ok(()));
        let work = tally::take();
        served.await.expect("server");
        // Each byte moved at most once to the buffer's start, not once per answer before it.
        assert!(work.moved <= MOST_READ, "{work:?}");
        assert!(work.parses <= 2_001 + work.reads, "{work:?}");
    }

    #[tokio::test]
    async fn what_is_no_http_fails_with_why_though_no_line_ends() {
        // Judged on its first bytes, as before heads were parsed only once a line ends.
        let (port, _served) = answering("SSH-2.0-OpenSSH_9.6").await;
        assert_eq!(
            run(&http(port), "127.0.0.1", &local()).await,
            Err(other("HTTP: invalid HTTP version parsed"))
        );
    }

    #[tokio::test]
    async fn a_tcp_probe_is_healthy_when_a_connection_opens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let tcp = spec(Kind::Tcp, port, Duration::from_secs(5));
        assert_eq!(run(&tcp, "127.0.0.1", &local()).await, Ok(()));
        // And the probe closed it at once: the server reads the end of it.
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.expect("closed");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn ipv6_literals_and_names_are_reached() {
        let (port, served) = answering("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(run(&http(port), "localhost", &local()).await, Ok(()));
        served.await.expect("server");
        // A machine without IPv6 on loopback cannot serve this half.
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            println!("no IPv6 on loopback: the IPv6 half is skipped");
            return;
        };
        let port = listener.local_addr().expect("address").port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let request = read_head(&mut conn).await;
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .expect("answer");
            request
        });
        assert_eq!(run(&http(port), "::1", &local()).await, Ok(()));
        let request = served.await.expect("server").to_ascii_lowercase();
        assert!(
            request.contains(&format!("host: [::1]:{port}\r\n")),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_says_so() {
        match run(&http(80), "no-such-host.invalid", &local()).await {
            Err(Failure::Resolve { host, error }) => {
                assert_eq!(host, "no-such-host.invalid");
                assert!(!error.is_empty());
            }
            // A machine whose resolver does not answer in time cannot tell.
            Err(Failure::Timeout(_)) => println!("the resolver did not answer: skipped"),
            other => panic!("{other:?}"),
        }
    }

    /// An HTTPS server with a fresh self-signed certificate for 127.0.0.1, answering 200 to
    /// every connection.
    async fn https_server() -> u16 {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a cert");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.expect("accept");
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake ends the connection; nothing to answer then.
                    let Ok(mut conn) = acceptor.accept(conn).await else {
                        return;
                    };
                    read_head(&mut conn).await;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn https_takes_a_self_signed_certificate_unless_told_to_verify() {
        let port = https_server().await;
        assert_eq!(
            run(&https_or_http(true, false, port), "127.0.0.1", &local()).await,
            Ok(())
        );
        match run(&https_or_http(true, true, port), "127.0.0.1", &local()).await {
            Err(Failure::Other(text)) => {
                assert!(text.starts_with("TLS: "), "{text}");
                assert!(text.contains("certificate"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_texts_are_one_short_line() {
        assert_eq!(short("a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(short(&long).chars().count(), LONGEST_TEXT + 1);
    }

    #[tokio::test]
    async fn a_host_that_is_not_the_container_is_never_connected_to() {
        let (port, served) = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let elsewhere = Allowed {
            container: "web".into(),
            addresses: vec!["10.0.0.2".parse().unwrap()],
        };
        for host in ["127.0.0.1", "localhost", "::1"] {
            assert_eq!(
                run(&http(port), host, &elsewhere).await,
                Err(Failure::NotTheContainer {
                    host: host.into(),
                    container: "web".into()
                }),
                "{host}"
            );
        }
        // Nothing reached the server: it is still waiting for its one request.
        assert!(!served.is_finished());
        served.abort();
    }
}
