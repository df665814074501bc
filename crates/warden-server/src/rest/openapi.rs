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
