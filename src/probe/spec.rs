//! A probe from a container's labels: `healthther.probe` and its `-interval`, `-timeout`,
//! `-retries`, `-start-period` and `-tls-verify`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Kind, ProbeSpec};
use crate::overrides::BadLabel;

pub const PROBE: &str = "healthther.probe";
const INTERVAL: &str = "healthther.probe-interval";
const TIMEOUT: &str = "healthther.probe-timeout";
const RETRIES: &str = "healthther.probe-retries";
const START_PERIOD: &str = "healthther.probe-start-period";
const TLS_VERIFY: &str = "healthther.probe-tls-verify";

/// The shortest interval a label may ask for: a label is the container author's, and must not
/// make healthther spend its CPU on one container.
const SHORTEST_INTERVAL: Duration = Duration::from_secs(1);
/// The most failures in a row a label may ask for before a restart.
const MOST_RETRIES: u32 = 1000;

/// The probe as a label would write it, for `status`: `http://:8080/healthz every 10s`.
pub fn shown(p: &ProbeSpec) -> String {
    let host = match &p.host {
        Some(h) if h.contains(':') => format!("[{h}]"),
        Some(h) => h.clone(),
        None => String::new(),
    };
    let url = match &p.kind {
        Kind::Tcp => format!("tcp://{host}:{}", p.port),
        Kind::Http { tls, path, .. } => {
            let scheme = if *tls { "https" } else { "http" };
            format!("{scheme}://{host}:{}{path}", p.port)
        }
    };
    format!("{url} every {}", humantime::format_duration(p.interval))
}

/// The probe the labels declare: `Ok(None)` when there is no `healthther.probe` label. A label
/// that does not parse makes the container run without a probe, and is named.
pub fn parse(labels: &BTreeMap<String, String>) -> Result<Option<ProbeSpec>, BadLabel> {
    let Some(url) = labels.get(PROBE) else {
        return Ok(None);
    };
    let bad = |label: &str, expected: &'static str| BadLabel {
        label: label.to_string(),
        value: labels.get(label).cloned().unwrap_or_default(),
        expected,
    };
    const URL: &str = "http://:PORT/PATH, https://:PORT/PATH or tcp://:PORT (a host name may \
                       come before the colon), with a port from 1 to 65535 and a path of the \
                       characters a URI may have (no spaces, #, <, > or `; %-encode them)";
    let (kind, host, port) = target(url.trim()).ok_or_else(|| bad(PROBE, URL))?;
    let verify = match labels
        .get(TLS_VERIFY)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(_) => return Err(bad(TLS_VERIFY, "true or false")),
    };
    let kind = match kind {
        Kind::Http { tls, path, .. } => Kind::Http { tls, verify, path },
        tcp => tcp,
    };
    const POSITIVE: &str = "a duration above zero such as 10s, 500ms or 2m, at most a day";
    let interval = duration(labels, INTERVAL, Duration::from_secs(10), false)
        .filter(|d| *d >= SHORTEST_INTERVAL)
        .ok_or_else(|| {
            bad(
                INTERVAL,
                "a duration of at least 1s such as 10s or 2m, at most a day",
            )
        })?;
    let timeout = duration(labels, TIMEOUT, Duration::from_secs(3), false)
        .ok_or_else(|| bad(TIMEOUT, POSITIVE))?;
    let start_period = duration(labels, START_PERIOD, Duration::ZERO, true).ok_or_else(|| {
        bad(
            START_PERIOD,
            "a duration such as 0s, 30s or 2m, at most a day",
        )
    })?;
    let retries = match labels.get(RETRIES).map(|v| v.trim()) {
        None => 3,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MOST_RETRIES).contains(n))
            .ok_or_else(|| bad(RETRIES, "a whole number from 1 to 1000"))?,
    };
    Ok(Some(ProbeSpec {
        kind,
        host,
        port,
        interval,
        timeout,
        retries,
        start_period,
    }))
}

/// The scheme, host and port (and path) of a probe URL; `None` if it is not one.
fn target(url: &str) -> Option<(Kind, Option<String>, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "tcp" if path.is_empty() || path == "/" => Kind::Tcp,
        "http" | "https" => Kind::Http {
            tls: scheme.eq_ignore_ascii_case("https"),
            verify: false,
            path: match path {
                "" => "/".to_string(),
                p if p.starts_with('?') => format!("/{p}"),
                p => p.to_string(),
            },
        },
        _ => return None,
    };
    if let Kind::Http { path, .. } = &kind {
        // It goes into the request line as it is: the request builder's own check.
        super::http::path(path).ok()?;
    }
    // No credentials: a probe sends none.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080.
        Some(v6) => {
            let (addr, port) = v6.split_once("]:")?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            (addr, port)
        }
        None => authority.rsplit_once(':')?,
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = match host {
        "" => None,
        h if h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')) =>
        {
            Some(h.to_string())
        }
        _ => return None,
    };
    Some((kind, host, port))
}

/// A duration label: `default` when it is absent; `None` when it does not parse, is over a
/// day, or is zero where zero is not allowed.
fn duration(
    labels: &BTreeMap<String, String>,
    label: &str,
    default: Duration,
    zero_ok: bool,
) -> Option<Duration> {
    let Some(v) = labels.get(label).map(|v| v.trim()) else {
        return Some(default);
    };
    crate::overrides::duration(v).filter(|d| zero_ok || !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn probe(url: &str) -> Result<Option<ProbeSpec>, BadLabel> {
        parse(&labels(&[(PROBE, url)]))
    }

    #[test]
    fn no_label_no_probe() {
        assert_eq!(parse(&labels(&[(INTERVAL, "5s")])), Ok(None));
    }

    #[test]
    fn reads_http_https_and_tcp_with_the_defaults() {
        let p = probe("http://:8080/healthz").unwrap().unwrap();
        assert_eq!(
            p,
            ProbeSpec {
                kind: Kind::Http {
                    tls: false,
                    verify: false,
                    path: "/healthz".into()
                },
                host: None,
                port: 8080,
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(3),
                retries: 3,
                start_period: Duration::ZERO,
            }
        );
        let p = probe("HTTPS://web:8443").unwrap().unwrap();
        assert_eq!(p.host.as_deref(), Some("web"));
        assert!(matches!(p.kind, Kind::Http { tls: true, verify: false, ref path } if path == "/"));
        let p = probe("http://:80?ready=1").unwrap().unwrap();
        assert!(matches!(p.kind, Kind::Http { ref path, .. } if path == "/?ready=1"));
        let p = probe("tcp://:5432").unwrap().unwrap();
        assert_eq!((p.kind, p.port), (Kind::Tcp, 5432));
        let p = probe("tcp://[::1]:5432").unwrap().unwrap();
        assert_eq!(p.host.as_deref(), Some("::1"));
    }

    #[test]
    fn reads_the_timing_labels() {
        let p = parse(&labels(&[
            (PROBE, "https://:8443/"),
            (INTERVAL, "2s"),
            (TIMEOUT, "500ms"),
            (RETRIES, "5"),
            (START_PERIOD, "30"),
            (TLS_VERIFY, "True"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.interval, Duration::from_secs(2));
        assert_eq!(p.timeout, Duration::from_millis(500));
        assert_eq!(p.retries, 5);
        assert_eq!(p.start_period, Duration::from_secs(30));
        assert!(matches!(p.kind, Kind::Http { verify: true, .. }));
    }

    #[test]
    fn a_bad_label_is_named_with_its_value() {
        for url in [
            "ftp://:21",
            "http://web",
            "http://:0/",
            "http://:65536/",
            "tcp://:5432/path",
            "http://:80/a b",
            "http://user:pw@web:80/",
            ":8080",
            "http://we b:80/",
        ] {
            let bad = probe(url).unwrap_err();
            assert_eq!((bad.label.as_str(), bad.value.as_str()), (PROBE, url));
        }
        for (label, value) in [
            (INTERVAL, "0s"),
            // A container's author cannot make healthther probe it a thousand times a second.
            (INTERVAL, "1ms"),
            (INTERVAL, "999ms"),
            (INTERVAL, "-5s"),
            (TIMEOUT, "0"),
            (TIMEOUT, "2d"),
            (RETRIES, "0"),
            (RETRIES, "three"),
            (START_PERIOD, "soon"),
            (TLS_VERIFY, "yes"),
        ] {
            let bad = parse(&labels(&[(PROBE, "tcp://:1"), (label, value)])).unwrap_err();
            assert_eq!((bad.label.as_str(), bad.value.as_str()), (label, value));
        }
        // A zero start period is no start period.
        assert!(parse(&labels(&[(PROBE, "tcp://:1"), (START_PERIOD, "0")])).is_ok());
    }

    #[test]
    fn a_path_the_request_would_refuse_is_a_bad_label() {
        // Accepted here and refused when the request was built, it failed every probe and
        // restarted a healthy container: it is a bad label, said once, and not probed.
        for url in [
            "http://:8080/a<b",
            "http://:8080/a`b",
            "http://:8080/?q=<x>",
        ] {
            let bad = probe(url).unwrap_err();
            assert_eq!((bad.label.as_str(), bad.value.as_str()), (PROBE, url));
            assert!(bad.expected.contains("path"), "{}", bad.expected);
            assert!(!bad.expected.contains('\n'), "one line: {}", bad.expected);
        }
        // The label and the request agree on every character: what one takes, the other sends.
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['\u{a0}', '\u{e9}', '\u{2028}'])
        {
            let path = format!("/a{c}b?q={c}");
            let label = probe(&format!("http://:80{path}"));
            let sent = super::super::http::request("web", 80, &path);
            assert_eq!(label.is_ok(), sent.is_ok(), "{c:?}: {label:?} {sent:?}");
        }
        // What hyper sends as it is, the probe sends too.
        for c in ['"', '\\', '|', '{', '}', '^'] {
            assert!(probe(&format!("http://:80/a{c}b")).is_ok(), "{c:?}");
        }
    }
}
