//! The proxy a request goes through, as the environment names it: `HTTPS_PROXY` for `https://`
//! URLs, `HTTP_PROXY` for `http://`, `ALL_PROXY` for both, each also in lower case, and
//! `NO_PROXY` for the hosts that are reached straight (names, with their subdomains; addresses
//! and networks; `*` for all). hyper-util reads them as curl does, and as reqwest, which
//! healthther used before, did. Credentials in the proxy's URL (`http://user:pass@proxy:3128`)
//! go as `Proxy-Authorization: Basic`. Plain HTTP goes to the proxy with the whole URL in the
//! request line; HTTPS through a `CONNECT` tunnel, with TLS to the real host inside it.

use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) use hyper_util::client::proxy::matcher::Matcher;

use super::{Error, Io, USER_AGENT};

/// The longest answer to CONNECT read: a status line and a few headers.
const HEAD_MAX: usize = 8 * 1024;

/// The environment's proxies, read at the first request that needs them: a process that sends
/// nothing reads nothing.
pub(super) fn from_env() -> &'static Matcher {
    static PROXIES: OnceLock<Matcher> = OnceLock::new();
    PROXIES.get_or_init(Matcher::from_env)
}

/// The variables the proxies are read from, by scheme, each name in the order read: the first
/// set one is taken, even empty.
pub const ENV_VARS: [[&str; 2]; 3] = [
    ["HTTP_PROXY", "http_proxy"],
    ["HTTPS_PROXY", "https_proxy"],
    ["ALL_PROXY", "all_proxy"],
];

/// Why `value`, a proxy variable's, is no proxy healthther can use; `None` when it is one (or
/// empty: none). hyper-util passes by a value it cannot parse, and requests then go straight
/// past the proxy the operator named: said at start instead.
pub fn refusal(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return None;
    }
    let proxies = Matcher::builder().all(value.to_string()).build();
    match route(&proxies, false, "healthther.invalid:80") {
        Ok(Route::Proxy(_)) => None,
        Ok(Route::Socks) => Some("a SOCKS proxy, which healthther does not speak"),
        Ok(Route::Direct) | Err(_) => {
            Some("not an http:// or https:// proxy URL with an ASCII host")
        }
    }
}

/// How a request reaches its target.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Direct,
    Proxy(Proxy),
    /// A SOCKS proxy is named: refused rather than passed by, which would leak past it.
    Socks,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Proxy {
    /// TLS to the proxy itself (an `https://` proxy URL).
    pub tls: bool,
    /// A name or address, an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    /// `Basic …`, from the proxy URL's `user:password@`.
    pub auth: Option<String>,
}

/// The route to `authority` (`host:port`) for `https` when `tls`, else `http`.
pub(super) fn route(proxies: &Matcher, tls: bool, authority: &str) -> Result<Route, Error> {
    let scheme = if tls { "https" } else { "http" };
    let dst: hyper::Uri = format!("{scheme}://{authority}/")
        .parse()
        .map_err(|_| Error::Url)?;
    let Some(intercept) = proxies.intercept(&dst) else {
        return Ok(Route::Direct);
    };
    let uri = intercept.uri();
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Ok(Route::Socks),
    };
    let host = uri.host().ok_or(Error::Url)?;
    Ok(Route::Proxy(Proxy {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        auth: intercept
            .basic_auth()
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    }))
}

/// Asks the proxy on `stream` for a tunnel to `authority`; the stream, once it is one.
pub(super) async fn tunnel<S: Io>(
    mut stream: S,
    authority: &str,
    auth: Option<&str>,
) -> Result<S, Error> {
    let mut head = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
    );
    if let Some(auth) = auth {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(Error::Tunnel)?;
    stream.flush().await.map_err(Error::Tunnel)?;
    // The proxy sends nothing past its answer's head until the client speaks TLS: read up to
    // the empty line, in pieces, and no further.
    let mut answer = Vec::new();
    let mut piece = [0u8; 512];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > HEAD_MAX {
            return Err(bad("an answer to CONNECT over 8 KiB"));
        }
        let n = stream.read(&mut piece).await.map_err(Error::Tunnel)?;
        if n == 0 {
            return Err(Error::Tunnel(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it closed the connection instead of answering CONNECT",
            )));
        }
        answer.extend_from_slice(&piece[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && !answer.ends_with(b"\r\n\r\n") {
            return Err(bad("bytes after its answer to CONNECT"));
        }
    }
    match status(&answer) {
        Some(200..=299) => Ok(stream),
        Some(code) => Err(Error::TunnelRefused(code)),
        None => Err(bad("an answer to CONNECT that is not HTTP")),
    }
}

fn bad(what: &'static str) -> Error {
    Error::Tunnel(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// The status of an answer's head (`HTTP/1.1 200 Connection established`).
fn status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let version = words.next()?;
    let code = words.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3)
        .then(|| code.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(http: &str, https: &str, all: &str, no: &str) -> Matcher {
        Matcher::builder()
            .http(http.to_string())
            .https(https.to_string())
            .all(all.to_string())
            .no(no.to_string())
            .build()
    }

    fn proxy(tls: bool, host: &str, port: u16, auth: Option<&str>) -> Route {
        Route::Proxy(Proxy {
            tls,
            host: host.into(),
            port,
            auth: auth.map(String::from),
        })
    }

    #[test]
    fn each_scheme_takes_its_proxy_and_all_proxy_fills_in() {
        let m = matcher("http://p1:3128", "", "http://p2:8080", "");
        assert_eq!(
            route(&m, false, "h:80").unwrap(),
            proxy(false, "p1", 3128, None)
        );
        assert_eq!(
            route(&m, true, "h:443").unwrap(),
            proxy(false, "p2", 8080, None)
        );
        let none = matcher("", "", "", "");
        assert_eq!(route(&none, true, "h:443").unwrap(), Route::Direct);
        // A proxy without a scheme is taken as http://; without a port, the scheme's.
        let m = matcher("", "proxy.corp", "", "");
        assert_eq!(
            route(&m, true, "h:443").unwrap(),
            proxy(false, "proxy.corp", 80, None)
        );
        let m = matcher("", "https://[::1]", "", "");
        assert_eq!(
            route(&m, true, "h:443").unwrap(),
            proxy(true, "::1", 443, None)
        );
    }

    #[test]
    fn no_proxy_names_hosts_domains_networks_and_everything() {
        let m = matcher(
            "",
            "",
            "http://p:3128",
            "hooks.example.com, .corp.example, 10.0.0.0/8, ::1",
        );
        for direct in [
            "hooks.example.com:443",
            "HOOKS.example.com:443",
            "a.hooks.example.com:443",
            "corp.example:443",
            "ntfy.corp.example:80",
            "10.1.2.3:8080",
            "[::1]:80",
        ] {
            assert_eq!(route(&m, true, direct).unwrap(), Route::Direct, "{direct}");
        }
        for proxied in ["example.com:443", "nothooks.example.com:443", "11.0.0.1:80"] {
            assert!(
                matches!(route(&m, true, proxied).unwrap(), Route::Proxy(_)),
                "{proxied}"
            );
        }
        let all = matcher("", "", "http://p:3128", "*");
        assert_eq!(route(&all, false, "anything:80").unwrap(), Route::Direct);
    }

    #[test]
    fn the_proxys_credentials_go_as_basic_and_socks_is_refused() {
        // `user:p@ss`, percent-encoded in the URL.
        let m = matcher("", "", "http://user:p%40ss@p:3128", "");
        assert_eq!(
            route(&m, true, "h:443").unwrap(),
            proxy(false, "p", 3128, Some("Basic dXNlcjpwQHNz"))
        );
        let m = matcher("", "socks5://p:1080", "", "");
        assert_eq!(route(&m, true, "h:443").unwrap(), Route::Socks);
    }

    #[test]
    fn a_proxy_that_would_be_passed_by_is_refused() {
        for ok in [
            "",
            "http://u:pw@proxy:3128",
            "proxy.corp:3128",
            "https://[::1]",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
        for (bad, want) in [
            ("not a url at all", "not an http"),
            ("ftp://u:SeCrEt@proxy:21", "not an http"),
            ("http://[::1", "not an http"),
            ("http://u:SeCrEt@bücher.example:3128", "not an http"),
            ("socks5://u:SeCrEt@p:1080", "SOCKS"),
        ] {
            assert!(refusal(bad).is_some_and(|r| r.contains(want)), "{bad}");
        }
    }

    #[test]
    fn an_answer_to_connect_is_read_for_its_status() {
        assert_eq!(
            status(b"HTTP/1.0 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(
            status(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n"),
            Some(407)
        );
        assert_eq!(status(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(status(b"HTTP/1.1 2000 x\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn a_tunnel_is_asked_for_with_the_credentials_and_refusals_say_the_status() {
        for (answer, want) in [
            (
                &b"HTTP/1.1 200 Connection established\r\nProxy-agent: t\r\n\r\n"[..],
                None,
            ),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                Some("407"),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nextra", Some("bytes after")),
            (b"", Some("closed the connection")),
        ] {
            let (ours, mut theirs) = tokio::io::duplex(4096);
            let proxy = tokio::spawn(async move {
                let mut head = vec![0u8; 1024];
                let n = theirs.read(&mut head).await.expect("the CONNECT");
                theirs.write_all(answer).await.expect("answer");
                if answer.is_empty() {
                    drop(theirs);
                    return (String::from_utf8_lossy(&head[..n]).to_string(), None);
                }
                (
                    String::from_utf8_lossy(&head[..n]).to_string(),
                    Some(theirs),
                )
            });
            let got = tunnel(ours, "h.example:443", Some("Basic dTpw")).await;
            let (head, _held) = proxy.await.expect("the proxy");
            assert!(
                head.starts_with("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n"),
                "{head}"
            );
            assert!(
                head.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
                "{head}"
            );
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e), Some(want)) => {
                    let text = crate::errors::error_chain(&e);
                    assert!(text.contains(want), "{text}");
                }
                (got, want) => panic!("{:?} for {want:?}", got.map(drop)),
            }
        }
    }
}
