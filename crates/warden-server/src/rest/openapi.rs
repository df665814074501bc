//! The OpenAPI 3 document of the HTTP port (`docs/openapi.json`), compiled in and served at
//! `GET /v1/openapi.json`. Its test keeps it and the router in step: every route the REST
//! router registers is documented, and every documented operation is routed.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document.
pub(crate) const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");

pub(crate) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, path)` of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."), "an OpenAPI 3 document");
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                found.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        found
    }

    /// `(METHOD, path)` of every route of the HTTP port's router.
    fn routed() -> BTreeSet<(String, String)> {
        let operators =
            crate::http::routes().into_iter().map(|(p, _)| ("GET".to_owned(), p.to_owned()));
        let rest =
            super::super::routes().into_iter().map(|(m, p, _)| (m.to_string(), p.to_owned()));
        operators.chain(rest).collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let (documented, routed) = (documented(), routed());
        assert!(routed.len() > 20, "{routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(undocumented.is_empty(), "routed but not in docs/openapi.json: {undocumented:?}");
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(unrouted.is_empty(), "in docs/openapi.json but not routed: {unrouted:?}");
    }

    #[test]
    fn every_operation_documents_its_answers_and_every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
        let schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
        let text = DOCUMENT;
        for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let responses = operation["responses"].as_object();
                assert!(responses.is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
                if path.starts_with("/v1/") && path != "/v1/openapi.json" {
                    assert!(
                        operation["responses"]["default"]["content"]["application/json"]["schema"]
                            ["$ref"]
                            == "#/components/schemas/Error",
                        "{method} {path}: errors are not documented as Error"
                    );
                }
            }
        }
    }
}
