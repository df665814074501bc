//! What a REST request carries: a JSON body read up to the member's
//! `limits.max_request_bytes` (as the client port reads no larger message), query
//! parameters, and values as the CLI writes them (DESIGN §9): UTF-8 in `value`, anything
//! else base64 in `value_base64`.
//!
//! An empty body reads as `{}`, so `curl -X POST` needs no `-d`; bodies are read whatever
//! their Content-Type (curl's `-d` says form-urlencoded). Unknown fields are refused: a
//! misspelt `timout_ms` must not silently mean "no timeout".

use std::collections::BTreeMap;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use warden_proto::ErrorKind;

use super::error::ApiError;

/// Reads `body` (at most `limit` bytes) as JSON of type `T`.
pub(crate) async fn json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                Code::ResourceExhausted,
                ErrorKind::RequestTooLarge,
                format!(
                    "the request body is larger than this member reads (limits.max_request_bytes = {limit} bytes); send less, or raise the limit on every member"
                ),
            ));
        }
        Err(e) => {
            return Err(ApiError::invalid(format!("the request body could not be read: {e}")));
        }
    };
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    serde_json::from_slice(text).map_err(|e| {
        ApiError::invalid(format!(
            "the request body is not the JSON this endpoint takes: {e} (see GET /v1/openapi.json)"
        ))
    })
}

/// A value as the API writes it: UTF-8 text in `value`, else base64 in `value_base64`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Value {
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl Value {
    /// `bytes` as the API writes them.
    pub(crate) fn of(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(text) => Value { value: Some(text.to_owned()), value_base64: None },
            Err(_) => Value { value: None, value_base64: Some(STANDARD.encode(bytes)) },
        }
    }
}

/// The bytes of a request's `value` or `value_base64` (at most one of them; neither is
/// empty).
pub(crate) fn value_bytes(
    value: Option<String>,
    value_base64: Option<String>,
) -> Result<Vec<u8>, ApiError> {
    match (value, value_base64) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("give the value in `value` (UTF-8) or `value_base64`, not both"))
        }
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(encoded)) => STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| ApiError::invalid(format!("`value_base64` is not base64: {e}"))),
        (None, None) => Ok(Vec::new()),
    }
}

/// A request's query parameters (`?path=/a&limit=5`), percent-decoded; the last of a
/// repeated name wins.
#[derive(Debug, Default)]
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    /// The parameters of `query` (the part of the URI after `?`).
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let decode =
            |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        let pairs =
            query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()).map(|pair| {
                match pair.split_once('=') {
                    Some((name, value)) => (decode(name), decode(value)),
                    None => (decode(pair), String::new()),
                }
            });
        Query(pairs.collect())
    }

    /// A parameter that must be there.
    pub(crate) fn required(&self, name: &str) -> Result<String, ApiError> {
        self.0.get(name).cloned().ok_or_else(|| {
            ApiError::invalid(format!("the query parameter `{name}` is required (?{name}=...)"))
        })
    }

    /// A parameter, if given.
    pub(crate) fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A number parameter, `default` when absent.
    pub(crate) fn number<N: std::str::FromStr>(
        &self,
        name: &str,
        default: N,
    ) -> Result<N, ApiError> {
        match self.optional(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "the query parameter `{name}` must be a non-negative integer, not {text:?}"
                ))
            }),
        }
    }

    /// A boolean parameter (`true` or `false`), false when absent.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.optional(name) {
            None => Ok(false),
            Some(text) => text.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "the query parameter `{name}` must be true or false, not {text:?}"
                ))
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_are_text_when_they_can_be_and_base64_otherwise() {
        assert_eq!(Value::of(b"hi"), Value { value: Some("hi".into()), value_base64: None });
        assert_eq!(Value::of(&[0xff, 0]), Value { value: None, value_base64: Some("/wA=".into()) });
        assert_eq!(value_bytes(None, Some("/wA=".into())).ok(), Some(vec![0xff, 0]));
        assert_eq!(value_bytes(Some("hi".into()), None).ok(), Some(b"hi".to_vec()));
        assert!(value_bytes(Some("a".into()), Some("YQ==".into())).is_err());
        assert!(value_bytes(None, Some("%%".into())).is_err());
    }

    #[test]
    fn queries_are_decoded() {
        let q = Query::parse(Some("path=%2Fa%2Fb&limit=5&flag=true&x"));
        assert_eq!(q.required("path").ok().as_deref(), Some("/a/b"));
        assert_eq!(q.number("limit", 0u32).ok(), Some(5));
        assert_eq!(q.number("missing", 7u32).ok(), Some(7));
        assert_eq!(q.flag("flag").ok(), Some(true));
        assert!(q.number::<u32>("path", 0).is_err());
        assert!(q.required("nope").is_err());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_and_bad_json_are_refused_by_kind() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            #[serde(default)]
            a: u64,
        }
        let big = json::<B>(Body::from(vec![b' '; 100]), 10).await.unwrap_err();
        assert_eq!(big.http_status().as_u16(), 413);
        let bad = json::<B>(Body::from("{"), 10).await.unwrap_err();
        assert_eq!(bad.http_status().as_u16(), 400);
        let unknown = json::<B>(Body::from("{\"b\":1}"), 10).await.unwrap_err();
        assert_eq!(unknown.http_status().as_u16(), 400);
        assert!(json::<B>(Body::empty(), 10).await.is_ok());
    }
}
