//! Text from outside: the config file, paths and watch glob patterns.

use warden_core::{Limits, WatchFilter, path as paths};
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
