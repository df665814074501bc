//! schemathesis (Python) against a real member: it reads `docs/openapi.json` from the
//! member (`GET /v1/openapi.json`), generates requests from it (examples, boundary values,
//! fuzzing, and stateful sequences following the document's links), and checks that no
//! answer is a server error (5xx) and every answer conforms to the document (status code,
//! content type, schema). Bounded: examples per operation, a time budget, a fixed seed.
//!
//! schemathesis is installed by `.ci/run` (pinned to [`VERSION`]), which exports its path
//! in `SCHEMATHESIS`; otherwise `schemathesis` is looked for on the PATH. Without it the
//! test fails under CI (`CI=true`) and is skipped, saying so, elsewhere.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{FAST_TIMING, TestCluster};

/// The schemathesis release the test is written for (its CLI changed between majors).
const VERSION: &str = "4.32.5";

/// The whole run's budget, and the test's deadline beyond it.
const BUDGET_SECONDS: u64 = 60;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The schemathesis program, with its version, if one is installed.
async fn schemathesis() -> Option<(String, String)> {
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let output = Command::new(&program).arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| (program, String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some((program, version)) = schemathesis().await else {
        assert!(
            !in_ci(),
            "schemathesis is not installed: .ci/run installs it (pip install schemathesis=={VERSION}) and sets SCHEMATHESIS"
        );
        eprintln!(
            "SKIPPED: schemathesis is not installed (pip install schemathesis=={VERSION}, or set SCHEMATHESIS to its path); CI=true makes this a failure"
        );
        return;
    };
    assert!(
        version.contains(VERSION),
        "{program} is {version:?}, the test is written for {VERSION}"
    );
    let cluster = TestCluster::start_with(1, FAST_TIMING, |_| {}).await;
    let http = cluster.node(1).http_addr();
    let report = tempfile::TempDir::new().unwrap();
    let log = report.path().join("schemathesis.log");
    let mut run = Command::new(&program);
    run.arg("run")
        .arg(format!("http://{http}/v1/openapi.json"))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "15"])
        .args(["--max-time", &BUDGET_SECONDS.to_string()])
        .args(["--request-timeout", "60"])
        .args(["--seed", "20261127"])
        .args(["--workers", "1"])
        .arg("--no-color")
        .current_dir(report.path())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(report.path().join("stderr.log")).unwrap()));
    let mut child = run.spawn().expect("schemathesis starts");
    let deadline = Instant::now() + Duration::from_secs(BUDGET_SECONDS + 240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "schemathesis ran longer than its budget and more: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stdout = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr = std::fs::read_to_string(report.path().join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "schemathesis failed ({status}):\n{stdout}\n{stderr}");
    // It did test the API, not just read the document.
    assert!(stdout.contains("passed"), "{stdout}");
    assert!(!stdout.contains("Tested: 0"), "{stdout}");
    cluster.stop().await;
}
