//! A remote engine over TLS, as the docker CLI reaches one: `DOCKER_HOST=tcp://...`,
//! `DOCKER_TLS_VERIFY`, and `ca.pem`, `cert.pem`, `key.pem` in `DOCKER_CERT_PATH`. The engine is
//! the real one, behind Debian's haproxy terminating TLS and requiring a client certificate of
//! our CA; every certificate is made here with openssl, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The fixture needs no network; without one these tests do not depend on the engine's
/// default bridge.
const NO_NETWORK: &[&str] = &["--network", "none"];

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1, and client certificates: `good/` of that CA,
/// `stranger/` of another CA (each a DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("hhpod")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=hhpod {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        std::fs::write(d.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
        let issue = |name: &str, ca: &str, ext: &str| {
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        };
        issue("server", "ca", "server.ext");
        issue("client", "ca", "client.ext");
        issue("stranger", "other-ca", "client.ext");
        // haproxy wants the server's certificate and key in one file.
        let bundle = [
            std::fs::read(d.join("server.crt")).expect("server.crt"),
            std::fs::read(d.join("server.key")).expect("server.key"),
        ]
        .concat();
        std::fs::write(d.join("server-bundle.pem"), bundle).expect("bundle");
        for (cert_dir, who) in [("good", "client"), ("stranger", "stranger")] {
            let to = d.join(cert_dir);
            std::fs::create_dir(&to).expect("cert dir");
            // Both trust the engine's CA; only the good client's certificate is of it.
            std::fs::copy(d.join("ca.pem"), to.join("ca.pem")).expect("ca.pem");
            std::fs::copy(d.join(format!("{who}.crt")), to.join("cert.pem")).expect("cert");
            std::fs::copy(d.join(format!("{who}.key")), to.join("key.pem")).expect("key");
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// haproxy terminating TLS on a loopback port, requiring a client certificate of the CA, and
/// passing the bytes on to the engine's socket; stopped by its pid when dropped.
struct TlsProxy {
    child: Child,
    port: u16,
}

impl TlsProxy {
    fn start(pki: &Pki) -> TlsProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let cfg = format!(
            "global\n    maxconn 100\n\n\
             defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 1h\n    \
             timeout server 1h\n\n\
             frontend tls\n    bind 127.0.0.1:{port} ssl crt {bundle} ca-file {ca} verify required\n    \
             default_backend engine\n\n\
             backend engine\n    server socket {socket}\n",
            bundle = pki.path("server-bundle.pem").display(),
            ca = pki.path("ca.pem").display(),
            socket = docker_socket(),
        );
        let file = pki.path("haproxy.cfg");
        std::fs::write(&file, cfg).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < DEADLINE, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsProxy { child, port }
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon, reaching `proxy` with TLS and the certificates in `cert_path`.
fn daemon_over_tls(proxy: &TlsProxy, cert_path: &Path, targets: &[&str]) -> Daemon {
    let (mut cmd, dir) = command(&auto_env(targets));
    cmd.env("DOCKER_HOST", proxy.url())
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", cert_path);
    Daemon::spawn(cmd, dir)
}

#[test]
fn a_remote_engine_over_tls_with_a_client_certificate_revives_a_target() {
    if !tools_present(&[("haproxy", "-v"), ("openssl", "version")]) {
        return;
    }
    let pki = Pki::make();
    let proxy = TlsProxy::start(&pki);
    let node = Node::start(&format!("hhpod{}", unique("tls")), NO_NETWORK);
    let daemon = daemon_over_tls(&proxy, &pki.path("good"), &[&node.name]);
    daemon.wait_log("watching");
    let before = node.started_at();
    node.kill();
    node.wait_restarted_since(&before);
    // The start, made by hand to see a 304, went over TLS too.
    let audit = daemon.wait_audit(1);
    assert_eq!(audit[0]["result"], "running", "{audit:?}");
}

#[test]
fn a_certificate_the_engine_refuses_is_one_line_naming_docker_cert_path() {
    if !tools_present(&[("haproxy", "-v"), ("openssl", "version")]) {
        return;
    }
    let pki = Pki::make();
    let proxy = TlsProxy::start(&pki);
    let stranger = pki.path("stranger");
    let mut daemon = daemon_over_tls(&proxy, &stranger, &["hhpod-none"]);
    daemon.wait_log("cannot reach the Docker engine");
    // Retries go on quietly: still one line after several.
    std::thread::sleep(Duration::from_secs(5));
    assert!(daemon.is_running(), "it keeps trying:\n{}", daemon.output());
    let out = daemon.output();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("cannot reach")).collect();
    assert_eq!(lines.len(), 1, "one line:\n{out}");
    assert!(
        lines[0].contains("DOCKER_CERT_PATH") && lines[0].contains(&*stranger.to_string_lossy()),
        "names DOCKER_CERT_PATH and the directory: {}",
        lines[0]
    );
}

#[test]
fn a_missing_certificate_stops_at_start_with_one_line_naming_the_file() {
    if !tools_present(&[("haproxy", "-v"), ("openssl", "version")]) {
        return;
    }
    let pki = Pki::make();
    let empty = pki.path("empty");
    std::fs::create_dir(&empty).expect("dir");
    std::fs::copy(pki.path("ca.pem"), empty.join("ca.pem")).expect("ca.pem");
    let (mut cmd, _dir) = command(&auto_env(&["hhpod-none"]));
    let out = cmd
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &empty)
        .output()
        .expect("run healthther");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("DOCKER_CERT_PATH") && stderr.contains("cert.pem"),
        "{stderr}"
    );
}
