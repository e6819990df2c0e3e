//! The HTTP of a probe, without I/O: the request's bytes, and what an answer's head says. One
//! `GET`, one status read: a whole HTTP client (hyper's builds a dispatcher, a channel, a header
//! map and two 8 KiB buffers per connection) would cost more than the probe's connection itself,
//! and a probe never reuses a connection. The head is parsed with httparse and checked as hyper
//! checks it, so a server is judged as before.

use std::io::Write;
use std::net::IpAddr;

use super::Failure;

/// The most headers an answer may have (hyper's limit): more is "too large".
const MOST_HEADERS: usize = 100;

/// What the head at the start of an answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not all of it has come yet.
    Partial,
    /// An interim answer (`100 Continue`, `103 Early Hints`) this many bytes long: the final
    /// one follows it.
    Interim(usize),
    /// The status of the final answer.
    Status(u16),
}

/// Why a path cannot go into a probe's request line as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    /// Refused by hyper's request builder: no URI's path and query (`<`, `>`, a backquote).
    #[error("{0}")]
    Uri(String),
    /// Taken by hyper, but not as written: a fragment it would drop, or whitespace.
    #[error("a fragment, whitespace or a control character")]
    NotAsWritten,
}

/// Whether `path` goes into the request line as it is: what hyper's request builder takes
/// (a URI's path and query), with no fragment and no whitespace. The label's parser asks
/// this too, so a path a label gives is never refused when the request is built.
pub fn path(path: &str) -> Result<(), BadPath> {
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(BadPath::NotAsWritten);
    }
    hyper::http::uri::PathAndQuery::try_from(path)
        .map(drop)
        .map_err(|e| BadPath::Uri(e.to_string()))
}

/// `GET path` to `host` on `port`: the request line and headers, nothing else.
pub fn request(host: &str, port: u16, path: &str) -> Result<Vec<u8>, Failure> {
    // As hyper's request builder: a path that is no URI's path and query is refused, never
    // sent (the label's parser refuses it first: a bad label, so never sent for one).
    self::path(path).map_err(|e| super::run::other(&format!("bad request: {e}")))?;
    let (open, close) = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => ("[", "]"),
        _ => ("", ""),
    };
    let mut bytes = Vec::with_capacity(96 + host.len() + path.len());
    // Writing into a Vec cannot fail: the result says nothing.
    let _ = write!(
        bytes,
        "GET {path} HTTP/1.1\r\nhost: {open}{host}{close}:{port}\r\nconnection: close\r\n\
         user-agent: healthther\r\n\r\n"
    );
    Ok(bytes)
}

/// What the head at the start of `bytes` says, or why it is no HTTP answer.
pub fn head(bytes: &[u8]) -> Result<Head, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MOST_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let len = match answer.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Err(e) => return Err(failed(parse_error(e))),
    };
    // Complete: httparse has read a status of three digits.
    let code = answer.code.unwrap_or(0);
    match code {
        0..=99 => Err(failed("invalid HTTP status-code parsed")),
        // Skipped by hyper too; 101 (Switching Protocols) is final, and no success.
        100 | 102..=199 => Ok(Head::Interim(len)),
        // No body can follow these: how one would be framed does not matter.
        101 | 204 | 304 => Ok(Head::Status(code)),
        _ => {
            framing(&answer)?;
            Ok(Head::Status(code))
        }
    }
}

/// What hyper refuses in how the body would be framed, though the probe never reads it: a
/// `Transfer-Encoding` in HTTP/1.0, a `Content-Length` that is no number or says two.
fn framing(answer: &httparse::Response<'_, '_>) -> Result<(), Failure> {
    let named = |name: &'static str| {
        answer
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    if named("transfer-encoding").next().is_some() {
        return match answer.version {
            Some(0) => Err(failed("unexpected transfer-encoding parsed")),
            _ => Ok(()),
        };
    }
    let mut length = None;
    for header in named("content-length") {
        for value in header.value.split(|b| *b == b',') {
            let n = digits(value.trim_ascii()).ok_or_else(|| failed(INVALID_LENGTH))?;
            if *length.get_or_insert(n) != n {
                return Err(failed(INVALID_LENGTH));
            }
        }
    }
    Ok(())
}

const INVALID_LENGTH: &str = "invalid content-length parsed";

/// Digits only, as hyper reads a length (no sign), and no more than a u64 holds.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// hyper's words for what httparse refused.
fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => TOO_LARGE,
        httparse::Error::Status => "invalid HTTP status-code parsed",
        httparse::Error::Version => "invalid HTTP version parsed",
        _ => "invalid HTTP header parsed",
    }
}

/// An answer whose head does not fit in what a probe reads.
pub const TOO_LARGE: &str = "message head is too large";

pub fn failed(what: &str) -> Failure {
    super::run::other(&format!("HTTP: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_plain_get_with_the_host_and_port() {
        let text = |host, path| String::from_utf8(request(host, 8080, path).unwrap()).unwrap();
        assert_eq!(
            text("10.0.0.2", "/healthz?x=1"),
            "GET /healthz?x=1 HTTP/1.1\r\nhost: 10.0.0.2:8080\r\nconnection: close\r\n\
             user-agent: healthther\r\n\r\n"
        );
        assert!(text("fd00::2", "/").contains("\r\nhost: [fd00::2]:8080\r\n"));
        assert!(text("web", "/").contains("\r\nhost: web:8080\r\n"));
        // As hyper refuses it (a path is at most 65,534 bytes).
        match request("web", 80, &"/".repeat(70_000)) {
            Err(Failure::Other(e)) => assert!(e.starts_with("bad request: "), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_head_tells_its_status_once_whole() {
        let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
        assert_eq!(head(answer), Ok(Head::Status(503)));
        assert_eq!(head(&answer[..20]), Ok(Head::Partial));
        assert_eq!(head(b""), Ok(Head::Partial));
        assert_eq!(head(b"HTTP/1.0 302 Found\r\n\r\n"), Ok(Head::Status(302)));
        // Interim answers are passed over, as hyper does; Switching Protocols is final.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(head(interim), Ok(Head::Interim(25)));
        assert_eq!(head(&interim[25..]), Ok(Head::Status(200)));
        assert_eq!(
            head(b"HTTP/1.1 101 Switching\r\n\r\n"),
            Ok(Head::Status(101))
        );
    }

    #[test]
    fn what_hyper_refuses_fails_with_its_words() {
        let refused = |answer: &[u8]| match head(answer) {
            Err(Failure::Other(e)) => e,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(answer)),
        };
        assert_eq!(
            refused(b"SSH-2.0-OpenSSH_9.6\r\n"),
            "HTTP: invalid HTTP version parsed"
        );
        assert_eq!(
            refused(b"HTTP/1.1 20 OK\r\n\r\n"),
            "HTTP: invalid HTTP status-code parsed"
        );
        assert_eq!(
            refused(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
            "HTTP: invalid HTTP header parsed"
        );
        for length in ["x", "-1", "", "1, 2", "99999999999999999999"] {
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            assert_eq!(
                refused(answer.as_bytes()),
                "HTTP: invalid content-length parsed",
                "{length:?}"
            );
        }
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(refused(two), "HTTP: invalid content-length parsed");
        let same = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2, 2\r\n\r\n";
        assert_eq!(head(same), Ok(Head::Status(200)));
        let chunked_10 = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            refused(chunked_10),
            "HTTP: unexpected transfer-encoding parsed"
        );
        let chunked_11 =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n";
        assert_eq!(head(chunked_11), Ok(Head::Status(200)));
        let many: String = (0..=MOST_HEADERS)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        let answer = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            refused(answer.as_bytes()),
            "HTTP: message head is too large"
        );
    }
}
