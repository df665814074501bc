use warden_client::{LockEntry, LockScope, ResourceHolder, Rotation, WaitMode};

use super::*;

fn holder(lock: &str, session: u64, token: Option<u64>, identity: &str) -> ResourceHolder {
    ResourceHolder {
        id: "42".into(),
        lock: lock.into(),
        entry: LockEntry {
            waiter: format!("{lock}/w-0000000001"),
            session_id: session,
            mode: WaitMode::Exclusive,
            token,
            since_ms: 1_000,
            identity: identity.into(),
            scope: LockScope::Node,
            priority: 0,
            owner: None,
            holds: 1,
        },
    }
}

fn draining() -> ResourceStatus {
    ResourceStatus {
        kind: "/orders".into(),
        version: "v1".into(),
        rotating_to: Some("v2".into()),
        current: vec![
            holder("/orders/v1/42", 7, Some(3), "alice"),
            holder("/orders/v1/42", 8, None, ""),
        ],
        waiting: vec![holder("/orders/v2/43", 9, None, "")],
        revision: 4,
    }
}

fn printed(json: bool, terminal: bool, events: &[Event]) -> String {
    let mut p = Printer::new(Vec::new(), json, terminal).with_clock(|| 4_500);
    for e in events {
        p.event(e).unwrap_or_else(|e| panic!("{e}"));
    }
    String::from_utf8(p.into_inner()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_plan_names_what_must_drain_and_what_waits() {
    let plan =
        Event::Plan { status: ResourceStatus { rotating_to: None, ..draining() }, to: "v2".into() };
    let text = printed(false, false, &[plan]);
    assert!(
        text.starts_with("plan: rotate /orders from v1 to v2; dry run, nothing changed\n"),
        "{text}"
    );
    assert!(text.contains("to drain from v1: 2 holder(s) and waiter(s)\n"), "{text}");
    assert!(text.contains("/orders/v1/42 session 7 (alice) holds 3.5s"), "{text}");
    assert!(text.contains("/orders/v1/42 session 8 waits 3.5s"), "{text}");
    assert!(text.contains("queued for v2: 1\n    /orders/v2/43 session 9 waits"), "{text}");
}

#[test]
fn json_lines_carry_each_holder_with_session_identity_token_and_age() {
    let events = [
        Event::Progress(draining()),
        Event::Forced(Rotation { from: "v1".into(), to: "v2".into(), switched: false, revoked: 2 }),
        Event::Done { from: "v1".into(), to: "v2".into(), revoked: 2 },
    ];
    let text = printed(true, true, &events);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let p = &lines[0];
    assert_eq!((p["event"].as_str(), p["version"].as_str()), (Some("progress"), Some("v1")));
    assert_eq!(p["rotating_to"], "v2");
    assert_eq!(p["holders"][0]["session"], 7);
    assert_eq!(p["holders"][0]["identity"], "alice");
    assert_eq!(p["holders"][0]["token"], 3);
    assert_eq!(p["holders"][0]["age_ms"], 3_500);
    assert!(p["holders"][1]["token"].is_null());
    assert_eq!(p["waiting"][0]["lock"], "/orders/v2/43");
    assert_eq!(
        (lines[1]["event"].as_str(), lines[1]["revoked"].as_u64()),
        (Some("forced"), Some(2))
    );
    assert_eq!(lines[2]["event"], "done");
}

#[test]
fn on_a_terminal_progress_rewrites_one_line_and_the_end_starts_a_new_one() {
    let events = [
        Event::Progress(draining()),
        Event::Progress(draining()),
        Event::Done { from: "v1".into(), to: "v2".into(), revoked: 0 },
    ];
    let text = printed(false, true, &events);
    assert_eq!(text.matches("\r\x1b[2K").count(), 2, "{text:?}");
    assert!(text.starts_with("\r\x1b[2K/orders v1 -> v2: "), "{text:?}");
    assert!(
        text.contains("1 holder(s) and 1 waiter(s) left on v1, 1 acquisition(s) waiting for v2"),
        "{text:?}"
    );
    assert!(
        text.ends_with("waits 3.5s\nrotated from v1 to v2; the v1 locks are gone\n"),
        "{text:?}"
    );
    // Not a terminal: every event is a line of its own.
    let plain = printed(false, false, &events);
    assert_eq!(plain.lines().count(), 3, "{plain:?}");
    assert!(!plain.contains('\r'));
    assert!(printed(false, true, &[]).is_empty());
}
