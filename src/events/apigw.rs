//! API Gateway: the integration request (an event) and the integration response (the answer).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Map, Query, Str};
use crate::Error;

/// A request API Gateway passes as an event (integration request), see SCF.md:
/// `{"requestContext":{...},"headers":{},"body":"...","pathParameters":{},
/// "queryStringParameters":{},"headerParameters":{},"stageVariables":{},"path","queryString":{},"httpMethod"}`.
///
/// Maps that are missing or `null` are empty. Answer with an [`IntegrationResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ApiGatewayRequest<'a> {
    /// `requestContext`: the API, the stage and the caller.
    #[serde(rename = "requestContext", default)]
    pub request_context: ApiGatewayRequestContext<'a>,
    /// The request headers, names as the client sent them ([`ApiGatewayRequest::header`]
    /// looks one up in any case).
    #[serde(default, deserialize_with = "nullable")]
    pub headers: Map<'a>,
    /// The body; Base64 when `isBase64Encoded` ([`ApiGatewayRequest::body_bytes`] decodes).
    #[serde(default)]
    pub body: Option<Str<'a>>,
    /// `pathParameters`: values of the `{name}` parts of the API's path.
    #[serde(rename = "pathParameters", default, deserialize_with = "nullable")]
    pub path_parameters: Map<'a>,
    /// `queryStringParameters`: the query parameters the API declares.
    #[serde(
        rename = "queryStringParameters",
        default,
        deserialize_with = "nullable"
    )]
    pub query_string_parameters: Query<'a>,
    /// `headerParameters`: the header parameters the API declares.
    #[serde(rename = "headerParameters", default, deserialize_with = "nullable")]
    pub header_parameters: Map<'a>,
    /// `stageVariables`.
    #[serde(rename = "stageVariables", default, deserialize_with = "nullable")]
    pub stage_variables: Map<'a>,
    /// The request path (`/test/value`).
    #[serde(default)]
    pub path: Str<'a>,
    /// `queryString`: every query parameter; values are `true` (bare `?flag`), a string, or an
    /// array (repeated name).
    #[serde(rename = "queryString", default, deserialize_with = "nullable")]
    pub query_string: Query<'a>,
    /// `httpMethod`.
    #[serde(rename = "httpMethod")]
    pub http_method: Str<'a>,
    /// `isBase64Encoded`: whether `body` is Base64.
    #[serde(rename = "isBase64Encoded", default)]
    pub is_base64_encoded: bool,
}

impl ApiGatewayRequest<'_> {
    /// A header's value by name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::lookup(&self.headers, name)
    }

    /// The first value of a query parameter (`queryString`).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query_string.get(name).and_then(|v| v.first())
    }

    /// The body as bytes: borrowed as it is, or decoded if `isBase64Encoded`; empty without one.
    ///
    /// # Errors
    /// A 400 if the body is marked Base64 and is not.
    pub fn body_bytes(&self) -> Result<Cow<'_, [u8]>, Error> {
        body_bytes(self.body.as_ref(), self.is_base64_encoded)
    }
}

/// `requestContext`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ApiGatewayRequestContext<'a> {
    /// `serviceId`: the API Gateway service.
    #[serde(rename = "serviceId", default)]
    pub service_id: Str<'a>,
    /// The API's path pattern (`/test/{path}`).
    #[serde(default)]
    pub path: Str<'a>,
    /// `httpMethod`.
    #[serde(rename = "httpMethod", default)]
    pub http_method: Str<'a>,
    /// `requestId`: the gateway's request id.
    #[serde(rename = "requestId", default)]
    pub request_id: Str<'a>,
    /// `identity`: the caller's key when the API uses key authentication.
    #[serde(default)]
    pub identity: ApiGatewayIdentity<'a>,
    /// `sourceIp`: the client's address.
    #[serde(rename = "sourceIp", default)]
    pub source_ip: Str<'a>,
    /// `stage`: `release`, `prepub`, `test`.
    #[serde(default)]
    pub stage: Str<'a>,
}

/// `requestContext.identity`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ApiGatewayIdentity<'a> {
    /// `secretId`: the API key's id (an identifier, not a secret key).
    #[serde(rename = "secretId", default)]
    pub secret_id: Option<Str<'a>>,
}

/// What an API Gateway integration response (or a CLB trigger) expects a function to return:
/// `{"isBase64Encoded":false,"statusCode":200,"headers":{},"body":"..."}`. A return value the
/// gateway cannot parse becomes its 403 "Invalid scf response format"; this type always
/// serializes to the right shape.
///
/// ```
/// use scf_lean::events::IntegrationResponse;
/// let r = IntegrationResponse::text(200, "hi").header("Cache-Control", "no-store");
/// assert_eq!(
///     serde_json::to_string(&r).unwrap(),
///     r#"{"isBase64Encoded":false,"statusCode":200,"headers":{"Cache-Control":"no-store","Content-Type":"text/plain; charset=utf-8"},"body":"hi"}"#
/// );
/// let r = IntegrationResponse::binary(200, "image/png", b"\x89PNG");
/// assert!(r.is_base64_encoded);
/// assert_eq!(r.body, "iVBORw==");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct IntegrationResponse<'a> {
    /// Whether `body` is Base64 (binary content).
    #[serde(rename = "isBase64Encoded")]
    pub is_base64_encoded: bool,
    /// The HTTP status the gateway answers with.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Response headers, one value each.
    pub headers: Map<'a>,
    /// The body: text, or Base64 when `is_base64_encoded`.
    pub body: Str<'a>,
}

impl<'a> IntegrationResponse<'a> {
    /// A text body, `Content-Type: text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<Str<'a>>) -> Self {
        IntegrationResponse {
            is_base64_encoded: false,
            status_code: status,
            headers: Map::new(),
            body: body.into(),
        }
        .header("Content-Type", "text/plain; charset=utf-8")
    }

    /// `value` serialized as a JSON body, `Content-Type: application/json`.
    ///
    /// # Errors
    /// A 500 if `value` cannot be serialized (a map with non-string keys, say).
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_string(value)?;
        Ok(IntegrationResponse::text(status, body).header("Content-Type", "application/json"))
    }

    /// A binary body, Base64-encoded, with its content type.
    pub fn binary(status: u16, content_type: &str, bytes: &[u8]) -> Self {
        let mut b64 = Vec::new();
        crate::base64::encode_into(bytes, &mut b64);
        // Base64 is ASCII.
        let body = String::from_utf8(b64).unwrap_or_default();
        let mut r = IntegrationResponse::text(status, body);
        r.is_base64_encoded = true;
        r.header("Content-Type", content_type.to_owned())
    }

    /// The same response with a header set (replacing one of the same name in any case).
    pub fn header(mut self, name: impl Into<Str<'a>>, value: impl Into<Str<'a>>) -> Self {
        let name = name.into();
        self.headers.retain(|k, _| !k.eq_ignore_ascii_case(&name));
        self.headers.insert(name, value.into());
        self
    }

    /// The body as bytes, decoded if it is Base64.
    ///
    /// # Errors
    /// A 400 if the body is marked Base64 and is not.
    pub fn body_bytes(&self) -> Result<Cow<'_, [u8]>, Error> {
        body_bytes(Some(&self.body), self.is_base64_encoded)
    }
}

pub(super) fn body_bytes<'s>(
    body: Option<&'s Str<'_>>,
    base64: bool,
) -> Result<Cow<'s, [u8]>, Error> {
    let Some(body) = body else {
        return Ok(Cow::Borrowed(&[]));
    };
    if !base64 {
        return Ok(Cow::Borrowed(body.as_bytes()));
    }
    let mut out = Vec::new();
    super::decode_base64(body, &mut out)
        .map_err(|e| Error::bad_request(format!("body: {}", e.message())))?;
    Ok(Cow::Owned(out))
}

/// A field that may also be `null` (read as its default).
pub(super) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{QueryValue, parse};

    #[test]
    fn test_query_string_shapes_and_lookups() {
        let r: ApiGatewayRequest = parse(
            br#"{"httpMethod":"GET","path":"/p","headers":{"X-Trace":"1"},
                "queryString":{"flag":true,"one":"1","many":["a","b"]},
                "pathParameters":null,"body":null}"#,
        )
        .unwrap();
        assert_eq!(r.query("one"), Some("1"));
        assert_eq!(r.query("many"), Some("a"));
        assert_eq!(r.query("flag"), None);
        assert_eq!(r.query_string["flag"], QueryValue::Flag(true));
        assert_eq!(r.header("x-trace"), Some("1"));
        assert_eq!(r.body_bytes().unwrap(), &b""[..]);
        assert!(r.path_parameters.is_empty());
    }

    #[test]
    fn test_base64_body() {
        let r: ApiGatewayRequest =
            parse(br#"{"httpMethod":"POST","body":"/wA=","isBase64Encoded":true}"#).unwrap();
        assert_eq!(r.body_bytes().unwrap(), &b"\xff\x00"[..]);
        let r: ApiGatewayRequest =
            parse(br#"{"httpMethod":"POST","body":"*","isBase64Encoded":true}"#).unwrap();
        assert_eq!(r.body_bytes().unwrap_err().status(), 400);
    }

    #[test]
    fn test_response_builders() {
        let r = IntegrationResponse::json(201, &serde_json::json!({"a": 1}))
            .unwrap()
            .header("content-type", "application/problem+json");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.body, r#"{"a":1}"#);
        let bin = IntegrationResponse::binary(200, "application/octet-stream", &[0, 1, 2, 255]);
        assert_eq!(bin.body_bytes().unwrap(), &[0u8, 1, 2, 255][..]);
        let json = serde_json::to_string(&bin).unwrap();
        let back: IntegrationResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bin);
    }
}
