//! The Python client's tests (`clients/python/tests`, pytest) against this build's `warden`
//! binary, so that `cargo test --workspace` proves a second language gets warden's recipes
//! over the gRPC API: sessions with keepalive, locks with fencing tokens, watches,
//! elections, error kinds. The tests start a `warden dev` cluster of their own, on ports
//! reserved here, and stop it at the end.
//!
//! The Python is the one `WARDEN_PYTHON` names, which `.ci/run` exports (a virtualenv with
//! `clients/python/requirements.txt`, pinned). Without it the test fails under CI
//! (`CI=true`) and is skipped, saying so, elsewhere. The stubs are generated from `proto/`
//! first (`python -m warden_client.generate`), so they are never older than the protos.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long pytest may run before it is stopped (it takes about 15 s on an idle machine).
const BUDGET: Duration = Duration::from_secs(300);

/// The ports `warden dev` takes for three members: base .. base + 22.
const PORT_SPAN: u16 = 23;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Both streams of a finished command, for a failure message.
fn shown(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Sends `signal` to every process of the group `group` (pytest and the cluster it started).
fn signal_group(signal: &str, group: u32) {
    Command::new("kill").args([signal, "--", &format!("-{group}")]).status().ok();
}

#[test]
fn the_python_clients_tests_pass_against_a_real_cluster() {
    let Some(python) = std::env::var("WARDEN_PYTHON").ok().filter(|p| !p.is_empty()) else {
        assert!(
            !in_ci(),
            "WARDEN_PYTHON is not set: .ci/run makes a virtualenv with clients/python/requirements.txt and sets it to its python"
        );
        eprintln!(
            "SKIPPED: WARDEN_PYTHON is not set (a python with clients/python/requirements.txt installed); CI=true makes this a failure"
        );
        return;
    };
    let root = repository();
    let generated = Command::new(&python)
        .args(["-m", "warden_client.generate"])
        .current_dir(root.join("clients/python"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(generated.status.success(), "generating the stubs failed:\n{}", shown(&generated));

    let logs = tempfile::TempDir::new().unwrap();
    let (stdout, stderr) = (logs.path().join("stdout.log"), logs.path().join("stderr.log"));
    let mut pytest = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "clients/python/tests"])
        .current_dir(&root)
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_BASE_PORT", warden_testkit::free_ports(PORT_SPAN).to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        // A group of its own, so a run over its budget is stopped with its cluster.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} -m pytest: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = pytest.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BUDGET {
            signal_group("-INT", pytest.id());
            std::thread::sleep(Duration::from_secs(5));
            signal_group("-KILL", pytest.id());
            pytest.wait().ok();
            panic!(
                "pytest ran over {BUDGET:?} and was stopped:\n{}\n{}",
                std::fs::read_to_string(&stdout).unwrap_or_default(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    eprintln!("{out}{err}");
    assert!(status.success(), "pytest failed ({status}):\n{out}\n{err}");
    // It ran the tests against the cluster, rather than skipping them.
    assert!(out.contains(" passed"), "{out}");
    assert!(!out.contains("skipped"), "{out}");
}
