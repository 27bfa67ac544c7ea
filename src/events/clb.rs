//! The CLB (load balancer) trigger.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::apigw::nullable;
use super::{Map, Query, Str};
use crate::Error;

/// A request a CLB listener passes to the function: headers (with CLB's `X-Vip`, `X-Vport`,
/// `X-Uri`, `X-Method`, `X-Real-Port`, `X-Client-Proto`... when configured), path, method,
/// query and body. Answer with an [`IntegrationResponse`](super::IntegrationResponse).
///
/// CLB sends bodies whose `Content-Type` is not text, JSON, JavaScript or XML Base64-encoded;
/// [`ClbRequest::body_bytes`] applies that rule (or `isBase64Encoded` when the event has it).
/// The query is read from `query`, `queryString` or `queryStringParameters`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ClbRequest<'a> {
    /// The request headers ([`ClbRequest::header`] looks one up in any case).
    #[serde(default, deserialize_with = "nullable")]
    pub headers: Map<'a>,
    /// The request path.
    #[serde(default)]
    pub path: Str<'a>,
    /// `httpMethod`.
    #[serde(rename = "httpMethod")]
    pub http_method: Str<'a>,
    /// The query parameters.
    #[serde(
        alias = "queryString",
        alias = "queryStringParameters",
        default,
        deserialize_with = "nullable"
    )]
    pub query: Query<'a>,
    /// The body as CLB sent it.
    #[serde(default)]
    pub body: Option<Str<'a>>,
    /// `isBase64Encoded`, when the event carries it.
    #[serde(
        rename = "isBase64Encoded",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_base64_encoded: Option<bool>,
}

impl ClbRequest<'_> {
    /// A header's value by name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::lookup(&self.headers, name)
    }

    /// Whether the body is Base64: `isBase64Encoded` if present, else whether the
    /// `Content-Type` is one CLB encodes (anything but `text/*`, `application/json`,
    /// `application/javascript` and `application/xml`; no content type: not encoded).
    pub fn is_body_base64(&self) -> bool {
        if let Some(b) = self.is_base64_encoded {
            return b;
        }
        let Some(ct) = self.header("content-type") else {
            return false;
        };
        let mime = ct.split(';').next().unwrap_or("").trim();
        let text = mime
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("text/"))
            || [
                "application/json",
                "application/javascript",
                "application/xml",
            ]
            .iter()
            .any(|t| mime.eq_ignore_ascii_case(t));
        !text
    }

    /// The body as bytes, decoded when it is Base64 ([`ClbRequest::is_body_base64`]).
    ///
    /// # Errors
    /// A 400 if the body should be Base64 and is not.
    pub fn body_bytes(&self) -> Result<Cow<'_, [u8]>, Error> {
        super::apigw::body_bytes(self.body.as_ref(), self.is_body_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_body_encoding_follows_the_content_type() {
        let req = |ct: &str, body: &str| {
            let json = format!(
                r#"{{"httpMethod":"POST","path":"/","headers":{{"Content-Type":"{ct}"}},"body":"{body}"}}"#
            );
            let r: ClbRequest = parse(json.as_bytes()).unwrap();
            r.body_bytes().map(|b| b.into_owned())
        };
        assert_eq!(req("application/json", "{}").unwrap(), b"{}");
        assert_eq!(req("text/html; charset=utf-8", "<p>").unwrap(), b"<p>");
        assert_eq!(req("APPLICATION/XML", "<a/>").unwrap(), b"<a/>");
        assert_eq!(req("image/png", "iVBORw==").unwrap(), b"\x89PNG");
        // Not ASCII: no panic on a char boundary, and not a text type.
        assert_eq!(req("té/x", "aGk=").unwrap(), b"hi");
        assert_eq!(req("text/", "aGk=").unwrap(), b"aGk=");
        assert_eq!(
            req("application/octet-stream", "*").unwrap_err().status(),
            400
        );
    }

    #[test]
    fn test_query_aliases_and_flag() {
        for key in ["query", "queryString", "queryStringParameters"] {
            let json =
                format!(r#"{{"httpMethod":"GET","{key}":{{"a":"1"}},"isBase64Encoded":false}}"#);
            let r: ClbRequest = parse(json.as_bytes()).unwrap();
            assert_eq!(r.query["a"].first(), Some("1"), "{key}");
            assert!(!r.is_body_base64());
        }
    }
}
