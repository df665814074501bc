//! The access rule over random policies: a compiled policy allows exactly what a naive
//! reading of its rules does (exact identities, exact paths and `P/**` subtrees), the
//! anonymous caller gets nothing, and a policy's text round-trips through the state.

use proptest::prelude::*;
use warden_core::acl::{Permission, Policy};

use crate::steps::cases;

const IDENTITIES: [&str; 4] = ["alice", "bob", "spiffe://warden/app/web", "carol.example.com"];
const PATHS: [&str; 6] = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x/y"];

/// A rule as data: identities, permissions, and paths (`(path, subtree)`: the path itself,
/// or everything strictly under it).
#[derive(Debug, Clone)]
struct RuleSpec {
    identities: Vec<&'static str>,
    permissions: Vec<Permission>,
    paths: Vec<(&'static str, bool)>,
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        proptest::sample::subsequence(IDENTITIES.to_vec(), 1..=2),
        proptest::sample::subsequence(Permission::ALL.to_vec(), 1..=3),
        proptest::collection::vec((proptest::sample::select(PATHS.to_vec()), any::<bool>()), 1..=2),
    )
        .prop_map(|(identities, permissions, paths)| RuleSpec {
            identities,
            permissions,
            paths,
        })
}

fn text(rules: &[RuleSpec]) -> String {
    let list =
        |items: Vec<String>| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
    rules
        .iter()
        .map(|r| {
            let paths = r
                .paths
                .iter()
                .map(|(p, subtree)| match (*subtree, *p) {
                    (true, "/") => "/**".to_owned(),
                    (true, p) => format!("{p}/**"),
                    (false, p) => p.to_owned(),
                })
                .collect();
            format!(
                "[[rule]]\nidentities = [{}]\npermissions = [{}]\npaths = [{}]\n\n",
                list(r.identities.iter().map(|i| (*i).to_owned()).collect()),
                list(r.permissions.iter().map(|p| p.name().to_owned()).collect()),
                list(paths),
            )
        })
        .collect()
}

/// The naive reading: some rule names the identity, the permission and the path.
fn naive(rules: &[RuleSpec], identity: &str, permission: Permission, path: &str) -> bool {
    rules.iter().any(|r| {
        r.identities.contains(&identity)
            && r.permissions.contains(&permission)
            && r.paths.iter().any(|(p, subtree)| match (*subtree, *p) {
                (false, p) => p == path,
                // `/**` is every path, the root included (`**` may match nothing).
                (true, "/") => true,
                (true, p) => path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a_policy_allows_exactly_what_its_rules_say(rules in proptest::collection::vec(rule(), 0..5)) {
        let text = text(&rules);
        let policy = match Policy::parse(&text) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
        };
        prop_assert_eq!(policy.rules(), rules.len());
        for identity in IDENTITIES {
            for permission in Permission::ALL {
                for path in PATHS {
                    prop_assert_eq!(
                        policy.allows(identity, permission, path),
                        naive(&rules, identity, permission, path),
                        "{} {} {}\n{}", identity, permission, path, text
                    );
                }
            }
        }
        for permission in Permission::ALL {
            prop_assert!(!policy.allows("", permission, "/a"));
        }
    }
}
