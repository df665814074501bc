//! Every ACL file shipped in `acl/` parses, and grants what its comments say.

use std::path::Path;

use warden_core::acl::{Permission, Policy};

fn load(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../acl").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Policy::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_shipped_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../acl");
    let mut count = 0;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            assert!(load(&name).rules() > 0, "{name} has no rules");
            count += 1;
        }
    }
    assert!(count >= 2, "acl/ should hold dev.toml and example.toml, found {count} files");
}

#[test]
fn dev_policy_grants_admin_everything_and_nobody_else_anything() {
    let p = load("dev.toml");
    for permission in Permission::ALL {
        assert!(p.allows("admin", permission, "/"));
        assert!(p.allows("admin", permission, "/a/b"));
        assert!(!p.allows("alice", permission, "/a/b"));
    }
}

#[test]
fn example_policy_grants_what_its_comments_say() {
    let p = load("example.toml");
    let billing = "spiffe://warden/app/billing";
    let web = "spiffe://warden/app/web";
    assert!(p.allows("spiffe://warden/ops/alice", Permission::Admin, "/"));
    assert!(p.allows(web, Permission::Watch, "/config/db"));
    assert!(!p.allows(web, Permission::Write, "/config/db"));
    assert!(p.allows("spiffe://warden/app/deployer", Permission::Write, "/config/db"));
    assert!(p.allows(billing, Permission::Lock, "/locks/billing/invoices"));
    assert!(!p.allows(web, Permission::Lock, "/locks/billing/invoices"));
    assert!(p.allows(web, Permission::Read, "/locks/billing/invoices"));
    assert!(!p.allows(web, Permission::Delete, "/locks/billing/invoices"));
    assert!(!p.allows(billing, Permission::Admin, "/locks/billing/invoices"));
    assert!(!p.allows("mallory", Permission::Read, "/config"));
}
