//! Text from outside: the config file, ACL files, paths and watch glob patterns.

use warden_core::acl::{Permission, Policy};
use warden_core::{
    ApplyContext, Command, Limits, Output, Request, State, WatchFilter, path as paths,
};
use warden_server::Config;

/// A config file: parsed as `warden server --config` parses it, validated, and, if it
/// parses, written back and parsed again to the same config.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<Config>(text) else { return };
    let _ = config.validate();
    let written = match toml::to_string(&config) {
        Ok(t) => t,
        Err(e) => panic!("a config that parses does not write back: {e}: {config:?}"),
    };
    let again = toml::from_str::<Config>(&written).map_err(|e| e.to_string());
    assert_eq!(again.as_ref(), Ok(&config), "a config does not survive a round trip: {written}");
}

/// A path: checked against the rules; a valid path must split into a valid parent and a
/// name that join back to it, at the depth its slashes give.
pub fn path(data: &[u8]) {
    let Ok(p) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    if paths::check(p, &limits).is_err() {
        return;
    }
    match paths::parent(p) {
        None => assert_eq!(p, paths::ROOT, "only the root has no parent"),
        Some(parent) => {
            assert!(paths::check(parent, &limits).is_ok(), "{p:?} has an invalid parent");
            assert_eq!(paths::join(parent, paths::name(p)), p, "parent and name do not join");
            assert_eq!(paths::depth(p), paths::depth(parent) + 1, "depth of {p:?}");
            assert!(p.starts_with(&paths::child_prefix(parent)), "child prefix of {p:?}");
        }
    }
}

/// A watch glob: compiled as the Watch service compiles it, then matched against a few
/// paths, its own pattern among them.
pub fn watch_glob(data: &[u8]) {
    let Ok(pattern) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    let Ok(filter) = WatchFilter::glob(pattern, &limits) else { return };
    assert!(pattern.starts_with('/') && pattern.len() <= limits.max_path_bytes);
    for p in [pattern, "/", "/a", "/a/b", "/locks/db/holder", "/config/x/y"] {
        let _ = filter.matches(p);
    }
}

/// An ACL file: parsed as `warden acl apply` and the member parse it; the state machine
/// must accept exactly the files that parse (and refuse the others, keeping no policy),
/// compile the same policy, and answer every question about it without panicking.
pub fn acl_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = Policy::parse(text);
    let mut state = State::default();
    let ctx = ApplyContext { index: 1, time_ms: 1, term: 1 };
    let applied = state.apply(Request::new(Command::SetPolicy { text: text.to_owned() }), &ctx);
    let fits = text.len() <= Limits::default().max_value_bytes;
    match (&parsed, &applied.response.outcome) {
        (Ok(policy), Ok(Output::PolicyApplied { rules })) => {
            assert_eq!(*rules as usize, policy.rules());
            assert_eq!(policy.text(), text);
            assert_eq!(state.policy().map(|p| p.text()), Some(text));
        }
        (Ok(_), Ok(other)) => panic!("SetPolicy answered {other:?}"),
        (Ok(_), Err(e)) => assert!(!fits, "a policy that parses was refused: {e}"),
        (Err(_), Ok(out)) => panic!("a policy that does not parse was applied: {out:?}"),
        (Err(_), Err(_)) => assert!(state.policy().is_none(), "a refused policy is in force"),
    }
    if let Ok(policy) = parsed {
        for identity in ["", "admin", "alice", "spiffe://warden/app/web"] {
            for path in ["/", "/a", "/a/b", "/config/db"] {
                for permission in Permission::ALL {
                    let allowed = policy.allows(identity, permission, path);
                    assert!(
                        !(identity.is_empty() && allowed),
                        "the anonymous caller was granted {permission} on {path}"
                    );
                }
            }
        }
    }
    let broken = warden_core::invariants::violations(&state);
    assert!(broken.is_empty(), "invariants broken by a policy: {broken:?}");
}
