//! Configuration as a user meets it: .env, the environment, flags, and clear errors.

use std::time::Duration;

use crate::harness::*;

/// Runs the binary to completion with `dotenv` as .env and `args`; returns (code, stderr).
fn run(dotenv: &str, args: &[&str]) -> (Option<i32>, String) {
    let (mut cmd, _dir) = command(dotenv);
    let out = cmd.args(args).output().expect("run healthther");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_variable() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("MODE=auto\n", &[], &["HEALTH_TARGETS"]),
        (
            "HEALTH_TARGETS=\"nodo_1,bad name\"\n",
            &[],
            &["HEALTH_TARGETS", "\"bad name\""],
        ),
        (
            "HEALTH_TARGETS=nodo_1\nMODE=sometimes\n",
            &[],
            &["MODE", "sometimes"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\nHEALTH_POLL_INTERVAL=fast\n",
            &[],
            &["HEALTH_POLL_INTERVAL", "fast"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\nDOCKER_HOST=ssh://me@host\n",
            &["--docker-host", "ssh://me@host"],
            &["DOCKER_HOST", "ssh://"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\nthis is not a line\n",
            &[],
            &[".env", "line 2", "this is not a line"],
        ),
        (
            "MODE=auto\nHEALTH_TARGETS=nodo_1, nodo_2\n",
            &[],
            &[".env", "line 2", "quote"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\n",
            &["--env-file", "/nonexistent/file.env"],
            &["/nonexistent/file.env"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\nMODE=au\0to\n",
            &[],
            &[".env", "line 2", "NUL"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\n",
            &["--docker-host", "tcp://256.0.0.1:99999"],
            &["DOCKER_HOST", "tcp://256.0.0.1:99999"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\n",
            &["--docker-host", "tcp://[::1"],
            &["DOCKER_HOST", "tcp://[::1"],
        ),
        (
            "HEALTH_TARGETS=nodo_1\n",
            &["--log-dir", "/etc/hostname"],
            &["/etc/hostname", "not a directory"],
        ),
    ];
    for (dotenv, args, needles) in cases {
        let (code, stderr) = run(dotenv, args);
        assert_eq!(code, Some(2), "{dotenv:?} {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        for n in *needles {
            assert!(
                stderr.contains(n),
                "{dotenv:?} {args:?}: {stderr:?} lacks {n:?}"
            );
        }
    }
}

#[test]
fn help_documents_every_setting() {
    let (mut cmd, _dir) = command("");
    let out = cmd.arg("--help").output().expect("run healthther");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "HEALTH_TARGETS",
        "MODE",
        "DOCKER_HOST",
        "HEALTH_POLL_INTERVAL",
        "HEALTH_STOP_TIMEOUT",
        "HEALTH_LOG_DIR",
        "RUST_LOG",
        "--env-file",
        "project/service",
    ] {
        assert!(help.contains(var), "--help lacks {var}:\n{help}");
    }
}

#[test]
fn environment_wins_over_the_env_file() {
    // The file's value is invalid; the environment's is fine, so healthther starts.
    let (mut cmd, dir) = command("HEALTH_TARGETS=\"bad name\"\n");
    cmd.env("HEALTH_TARGETS", "nodo_1")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let mut daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("cannot reach the Docker engine");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn log_directory_is_created() {
    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\n");
    cmd.args(["--log-dir", "deep/er/logs"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let log_dir = dir.path().join("deep/er/logs");
    let mut daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("cannot reach");
    assert!(log_dir.is_dir());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn unknown_flags_and_non_utf8_values_get_one_line_too() {
    let (code, stderr) = run("HEALTH_TARGETS=nodo_1\n", &["--taregts", "x"]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("'--taregts'"), "{stderr}");

    use std::os::unix::ffi::OsStrExt;
    let (mut cmd, _dir) = command("");
    cmd.env(
        "HEALTH_TARGETS",
        std::ffi::OsStr::from_bytes(b"nodo_1,\xff\xfe"),
    );
    let out = cmd.output().expect("run healthther");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("HEALTH_TARGETS is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn an_empty_variable_means_its_default() {
    // As docker-compose.yml passes `${HEALTH_POLL_INTERVAL:-}` through when it is not set.
    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\nHEALTH_POLL_INTERVAL=\n");
    cmd.env("HEALTH_QUARANTINE_AFTER", "")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let mut daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("cannot reach the Docker engine");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_misspelt_key_in_the_env_file_is_named_once_with_the_closest_one() {
    let (mut cmd, dir) = command("HEALTH_TARGETS=nodo_1\nHEALTH_POLL_INTRVAL=5s\n");
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let mut daemon = Daemon::spawn(cmd, dir);
    daemon.wait_log("cannot reach the Docker engine");
    let out = daemon.output();
    let warned: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("HEALTH_POLL_INTRVAL"))
        .collect();
    assert_eq!(warned.len(), 1, "{out}");
    assert!(warned[0].contains("HEALTH_POLL_INTERVAL"), "{out}");
    assert!(daemon.is_running());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn an_env_file_that_cannot_be_parsed_never_shows_a_notification_secret() {
    // Unquoted, space-separated URLs: the line cannot be parsed.
    let (code, err) = run(
        "HEALTH_TARGETS=a\nHEALTH_NOTIFY=telegram://110201543:TgSeCrEt@telegram?chats=1 \
         generic://u:PwSeCrEt@h/x?token=TokSeCrEt\n",
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("line 2") && err.contains("quote"), "{err}");
    assert!(!err.contains("SeCrEt"), "{err}");
}
