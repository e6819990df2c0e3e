//! The test suite itself: a test skipped for a missing tool is counted and said at the end.

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_test_skipped_for_a_missing_tool_is_counted_at_the_end_of_the_output() {
    // This very test binary, running one test that needs haproxy, with haproxy off the PATH
    // and without CI=true (under which a skip fails instead).
    let path = std::env::var_os("PATH").unwrap_or_default();
    let without: Vec<_> = std::env::split_paths(&path)
        .filter(|dir| !dir.join("haproxy").exists())
        .collect();
    let path = std::env::join_paths(without).expect("a PATH");
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "proxies::an_event_stream_cut_by_an_idle_timeout_is_asked_for_again_at_once",
        ])
        .env("PATH", path)
        .env_remove("CI")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .stdin(Stdio::null())
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.contains("1 skipped") && last.contains("sudo .ci/install"),
        "the output ends with: {last:?}\n{stdout}{stderr}"
    );
    assert!(stderr.contains("haproxy"), "{stderr}");
}
