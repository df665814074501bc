//! Access control: which identities may do what on which paths.
//!
//! A policy is a TOML file of rules; each grants some identities (exact names or globs,
//! e.g. `spiffe://warden/app/*`) some permissions on some path globs (`/config/**`).
//! Whatever no rule grants is denied. The policy in force is part of the replicated state
//! (kept as text in the node [`POLICY_PATH`], Chubby-style, and compiled here), so every
//! member decides a request alike at the same revision. Parsing is whole-file and strict:
//! an unknown key, permission or a bad glob refuses the file with its line, and the policy
//! in force stays.
//!
//! Globs are matched with `globset`: `*` stops at `/`, `**` crosses it. `/app/**` matches
//! everything under `/app` but not `/app` itself; list both to grant both (`/**` is every
//! path, the root included). The anonymous
//! caller (no client certificate) matches no rule.

use std::fmt;
use std::ops::Range;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

/// The subtree warden keeps its own nodes in; clients cannot write there.
pub const RESERVED_PREFIX: &str = "/warden";

/// The node that holds the policy in force, as the text it was applied from.
pub const POLICY_PATH: &str = "/warden/acl";

/// Whether `path` is [`RESERVED_PREFIX`] or under it.
pub fn is_reserved(path: &str) -> bool {
    path.strip_prefix(RESERVED_PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One thing a rule may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read a node's value, stat and children; a lock's status.
    Read,
    /// Set a node's value.
    Write,
    /// Create a node.
    Create,
    /// Delete a node.
    Delete,
    /// Watch a path and receive its events.
    Watch,
    /// Acquire and release locks and semaphores; campaign, proclaim and resign in
    /// elections; set, remove, wait on, enter and leave barriers.
    Lock,
    /// Operate the cluster: revoke locks, apply policies, list sessions, cluster status.
    Admin,
}

impl Permission {
    /// Every permission, in order.
    pub const ALL: [Permission; 7] = [
        Permission::Read,
        Permission::Write,
        Permission::Create,
        Permission::Delete,
        Permission::Watch,
        Permission::Lock,
        Permission::Admin,
    ];

    /// Its name in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Create => "create",
            Permission::Delete => "delete",
            Permission::Watch => "watch",
            Permission::Lock => "lock",
            Permission::Admin => "admin",
        }
    }

    /// The permission named `name` (`all` is not one: see [`Policy::parse`]).
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a policy file was refused: the line (from 1) it is about, if any, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct PolicyError {
    /// The line of the file the problem is on.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub reason: String,
}

/// The file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rule: Vec<Spanned<RuleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    identities: Spanned<Vec<Spanned<String>>>,
    permissions: Spanned<Vec<Spanned<String>>>,
    paths: Spanned<Vec<Spanned<String>>>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    identities: GlobSet,
    paths: GlobSet,
    permissions: u8,
}

/// A compiled policy, with the text it came from.
#[derive(Debug, Clone)]
pub struct Policy {
    text: String,
    rules: Vec<Rule>,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Policy {}

/// The line (from 1) that byte `offset` of `text` is on.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}

impl Policy {
    /// Parses and compiles a policy file, checking all of it: the first problem refuses the
    /// whole file, naming its line.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let at = |span: Range<usize>, reason: String| PolicyError {
            line: Some(line_of(text, span.start)),
            reason,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError {
            line: e.span().map(|s| line_of(text, s.start)),
            reason: format!(
                "{}; a policy is a list of [[rule]] tables with identities, permissions and paths",
                e.message()
            ),
        })?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for rule in file.rule {
            let span = rule.span();
            let rule = rule.into_inner();
            let identities = globs(text, rule.identities, "identities", |name| {
                if name.is_empty() {
                    Some("an identity pattern cannot be empty (the anonymous caller is never granted anything)".to_owned())
                } else {
                    None
                }
            })?;
            let paths = globs(text, rule.paths, "paths", |path| {
                if path.starts_with('/') {
                    None
                } else {
                    Some(format!("path pattern {path:?} must start with \"/\""))
                }
            })?;
            let mut permissions = 0u8;
            let listed = rule.permissions;
            if listed.get_ref().is_empty() {
                return Err(at(listed.span(), "a rule must grant at least one permission".into()));
            }
            for p in listed.into_inner() {
                let name = p.get_ref().as_str();
                if name == "all" {
                    permissions |= Permission::ALL.iter().fold(0, |bits, p| bits | p.bit());
                    continue;
                }
                let permission = Permission::from_name(name).ok_or_else(|| {
                    at(
                        p.span(),
                        format!(
                            "unknown permission {name:?}; use {} or all",
                            Permission::ALL.map(Permission::name).join(", ")
                        ),
                    )
                })?;
                permissions |= permission.bit();
            }
            if identities.is_empty() || paths.is_empty() {
                return Err(at(span, "a rule must name at least one identity and one path".into()));
            }
            rules.push(Rule { identities, paths, permissions });
        }
        Ok(Policy { text: text.to_owned(), rules })
    }

    /// The policy that grants nothing (an empty file).
    pub fn deny_all() -> Policy {
        Policy { text: String::new(), rules: Vec::new() }
    }

    /// The text the policy was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many rules it has.
    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    /// Whether some rule grants `identity` the `permission` on `path`.
    pub fn allows(&self, identity: &str, permission: Permission, path: &str) -> bool {
        !identity.is_empty()
            && self.rules.iter().any(|r| {
                r.permissions & permission.bit() != 0
                    && r.identities.is_match(identity)
                    && r.paths.is_match(path)
            })
    }

    /// The permissions `identity` holds on `path`, in order.
    pub fn granted(&self, identity: &str, path: &str) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.allows(identity, *p, path)).collect()
    }
}

/// Compiles a list of globs, each checked by `problem` first.
fn globs(
    text: &str,
    list: Spanned<Vec<Spanned<String>>>,
    what: &str,
    problem: impl Fn(&str) -> Option<String>,
) -> Result<GlobSet, PolicyError> {
    let at = |span: Range<usize>, reason: String| PolicyError {
        line: Some(line_of(text, span.start)),
        reason,
    };
    if list.get_ref().is_empty() {
        return Err(at(list.span(), format!("{what} cannot be an empty list")));
    }
    let mut set = GlobSetBuilder::new();
    for item in list.into_inner() {
        let span = item.span();
        let pattern = item.into_inner();
        if let Some(reason) = problem(&pattern) {
            return Err(at(span, reason));
        }
        let glob = GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| at(span.clone(), format!("bad pattern {pattern:?}: {}", e.kind())))?;
        set.add(glob);
    }
    set.build().map_err(|e| PolicyError { line: None, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
# operators
[[rule]]
identities = ["admin"]
permissions = ["all"]
paths = ["/", "/**"]

[[rule]]
identities = ["spiffe://warden/app/*"]
permissions = ["read", "watch"]
paths = ["/config", "/config/**"]

[[rule]]
identities = ["spiffe://warden/app/billing"]
permissions = ["lock", "create", "write", "delete"]
paths = ["/locks/billing/*"]
"#;

    #[test]
    fn grants_only_what_a_rule_names() {
        let p = parsed(EXAMPLE);
        assert_eq!(p.rules(), 3);
        assert!(p.allows("admin", Permission::Admin, "/"));
        assert!(p.allows("admin", Permission::Delete, "/a/b/c"));
        let billing = "spiffe://warden/app/billing";
        assert!(p.allows(billing, Permission::Read, "/config"));
        assert!(p.allows(billing, Permission::Watch, "/config/db/url"));
        assert!(!p.allows(billing, Permission::Write, "/config/db/url"));
        assert!(p.allows(billing, Permission::Lock, "/locks/billing/x"));
        // `*` stops at "/".
        assert!(!p.allows(billing, Permission::Lock, "/locks/billing/x/y"));
        assert!(!p.allows("spiffe://warden/app/billing/extra", Permission::Read, "/config"));
        assert!(!p.allows("spiffe://warden/app/web", Permission::Lock, "/locks/billing/x"));
        assert!(!p.allows("mallory", Permission::Read, "/config"));
        assert_eq!(
            p.granted("spiffe://warden/app/web", "/config"),
            vec![Permission::Read, Permission::Watch]
        );
    }

    #[test]
    fn the_anonymous_caller_gets_nothing() {
        let p =
            parsed("[[rule]]\nidentities = [\"*\"]\npermissions = [\"all\"]\npaths = [\"/**\"]\n");
        assert!(p.allows("anyone", Permission::Read, "/x"));
        assert!(!p.allows("", Permission::Read, "/x"));
    }

    #[test]
    fn an_empty_policy_denies_everything() {
        let p = parsed("");
        assert!(!p.allows("admin", Permission::Admin, "/"));
    }

    fn parsed(text: &str) -> Policy {
        match Policy::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("refused: {e}"),
        }
    }

    fn refused(text: &str) -> PolicyError {
        match Policy::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let e = refused(
            "[[rule]]\nidentities = [\"a\"]\npermissions = [\"read\", \"reed\"]\npaths = [\"/**\"]\n",
        );
        assert_eq!(e.line, Some(3));
        assert!(e.reason.contains("unknown permission \"reed\""), "{e}");
        let e = refused(
            "[[rule]]\nidentities = [\"a\"]\npermissions = [\"read\"]\npaths = [\"x/**\"]\n",
        );
        assert_eq!(e.line, Some(4));
        assert!(e.reason.contains("must start with"), "{e}");
        let e = refused(
            "[[rule]]\nidentities = [\"a\"]\npermissions = [\"read\"]\npaths = [\"/a[\"]\n",
        );
        assert_eq!(e.line, Some(4));
        let e = refused("[[rule]]\nidentities = [\"a\"]\npermissions = [\"read\"]\n");
        assert!(e.reason.contains("paths"), "{e}");
        let e = refused(
            "[[rule]]\nidentities = [\"a\"]\npermissions = [\"read\"]\npaths = [\"/\"]\ncolour = 1\n",
        );
        assert_eq!(e.line, Some(5));
        let e = refused("[[rule]]\nidentities = []\npermissions = [\"read\"]\npaths = [\"/\"]\n");
        assert_eq!(e.line, Some(2));
        let e =
            refused("[[rule]]\nidentities = [\"\"]\npermissions = [\"read\"]\npaths = [\"/\"]\n");
        assert_eq!(e.line, Some(2));
        let e = refused("[[rule]\n");
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().starts_with("line 1: "), "{e}");
    }

    #[test]
    fn reserved_paths() {
        assert!(is_reserved("/warden"));
        assert!(is_reserved("/warden/acl"));
        assert!(!is_reserved("/wardens"));
        assert!(!is_reserved("/app/warden"));
        assert!(is_reserved(POLICY_PATH));
    }
}
