//! Typed SCF trigger events and API Gateway integration responses (the `events` feature).
//!
//! One type per trigger, shaped like Tencent's documented examples, borrowing strings from the
//! request body where the JSON has no escapes ([`Str`]):
//!
//! | trigger | type | notes |
//! |---|---|---|
//! | Timer | [`TimerEvent`] | `"Type"` is `"timer"` or `"Timer"` |
//! | COS | [`CosEvent`] | `Records[].cos` and `Records[].event` |
//! | CKafka | [`CkafkaEvent`] | several messages per event |
//! | CMQ topic and queue | [`CmqEvent`] | `msgTag` as an array or a comma-separated string |
//! | CLS | [`ClsEvent`] | `data` is Base64 of gzip: [`ClsData::decode_into`] gives [`ClsLogs`] |
//! | CLB | [`ClbRequest`] | body Base64 unless text, JSON, JavaScript or XML |
//! | API Gateway (integration request) | [`ApiGatewayRequest`] | `queryString` values as bool, string or array |
//! | API Gateway / CLB answer | [`IntegrationResponse`] | `{"isBase64Encoded","statusCode","headers","body"}` |
//!
//! Unknown fields are ignored; fields a trigger may leave out are `Option`s or default to empty.
//!
//! ## Using them
//! Owned or borrowed, an event type goes through [`parse`], which answers an event that does not
//! fit with a 400 naming the path of the bad field:
//! `the event does not fit CosEvent: Records[0].cos.cosObject.size: invalid type: string "x",
//! expected u64 at line 1 column 180`.
//!
//! The short way is the [`Event::handler`] adapter, a closure over the typed event:
//!
//! ```
//! use scf_lean::events::{Event, TimerEvent};
//! use scf_lean::{Context, Function, Response};
//!
//! let mut f = TimerEvent::handler(|e, ctx| {
//!     Ok(format!("{} fired at {} ({})", e.trigger_name, e.time, ctx.request_id.unwrap_or("-")))
//! });
//! let mut out = Response::new();
//! let event = br#"{"Type":"Timer","TriggerName":"EveryDay","Time":"2019-02-21T11:49:00Z"}"#;
//! f.event(event, &Context::default(), &mut out).unwrap();
//! assert_eq!(out.body(), br#""EveryDay fired at 2019-02-21T11:49:00Z (-)""#);
//! let e = f.event(br#"{"Type":"cos"}"#, &Context::default(), &mut out).unwrap_err();
//! assert_eq!(e.status(), 400);
//! ```
//!
//! When the answer borrows from the event, implement [`Function`] and call
//! [`parse`] inside it, the event's lifetime is then the request's:
//!
//! ```
//! use scf_lean::events::{ApiGatewayRequest, IntegrationResponse};
//! use scf_lean::{Context, Error, Function, Response};
//!
//! struct Echo;
//! impl Function for Echo {
//!     fn event<'a>(&mut self, event: &'a [u8], _: &Context<'a>, out: &mut Response<'a>) -> Result<(), Error> {
//!         let req: ApiGatewayRequest<'a> = scf_lean::events::parse(event)?;
//!         let body = req.body.unwrap_or_default(); // borrowed from `event`
//!         out.json(&IntegrationResponse::text(200, body))
//!     }
//! }
//! ```
//!
//! [`json_fn`](crate::json_fn) keeps working for owned event types (`serde_json::Value`, your own
//! `#[derive(Deserialize)]` structs without lifetimes).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::{Context, Error, Function, Response};

mod apigw;
mod clb;
mod cls;
mod cmq;
mod codec;
mod cos;
mod kafka;
mod str;
mod timer;

pub use crate::base64::decode_into as decode_base64;
pub use apigw::{
    ApiGatewayIdentity, ApiGatewayRequest, ApiGatewayRequestContext, IntegrationResponse,
};
pub use clb::ClbRequest;
pub use cls::{CLS_MAX_DECODED_BYTES, ClsData, ClsEvent, ClsLogs, ClsRecord};
pub use cmq::{CmqEvent, CmqMessage, CmqRecord, CmqTags};
pub use cos::{
    CosBucket, CosEntity, CosEvent, CosEventInfo, CosObject, CosRecord, CosRequestParameters,
};
pub use kafka::{CkafkaEvent, CkafkaMessage, CkafkaRecord};
pub use str::Str;
pub use timer::TimerEvent;

/// String-to-string maps of an event (headers, COS object metadata, path parameters).
pub type Map<'a> = BTreeMap<Str<'a>, Str<'a>>;

/// The query parameters of an HTTP-shaped event.
pub type Query<'a> = BTreeMap<Str<'a>, QueryValue<'a>>;

/// One query parameter as API Gateway writes it: `true` for a bare `?flag`, a string, or an
/// array when the name is repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryValue<'a> {
    /// A parameter without a value (`?debug`), or a value the gateway wrote as a bool.
    Flag(bool),
    /// One value.
    One(Str<'a>),
    /// A repeated parameter's values, in order.
    Many(Vec<Str<'a>>),
}

impl QueryValue<'_> {
    /// The first value; `None` for a flag or an empty array.
    pub fn first(&self) -> Option<&str> {
        self.values().first().map(|s| s.as_str())
    }

    /// Every value (none for a flag).
    pub fn values(&self) -> &[Str<'_>] {
        match self {
            QueryValue::Flag(_) => &[],
            QueryValue::One(s) => std::slice::from_ref(s),
            QueryValue::Many(v) => v,
        }
    }
}

impl Serialize for QueryValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            QueryValue::Flag(b) => s.serialize_bool(*b),
            QueryValue::One(v) => v.serialize(s),
            QueryValue::Many(v) => v.serialize(s),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for QueryValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{SeqAccess, Visitor};
        use std::fmt;
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QueryValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bool, a string or an array of strings")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(QueryValue::Flag(v))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(QueryValue::One(Str::new(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(QueryValue::One(Str::from(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<Str<'de>>()? {
                    v.push(s);
                }
                Ok(QueryValue::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses an event into `T`, borrowing from `event` where `T` does.
///
/// # Errors
/// A 400 [`Error`]: `the event is not valid JSON: <reason>` for broken JSON, or
/// `the event does not fit <Type>: <path>: <reason>` naming the field that did not fit,
/// as `Records[0].cos.cosObject.size`.
///
/// ```
/// use scf_lean::events::{CosEvent, parse};
/// let e = parse::<CosEvent>(br#"{"Records":[{"cos":{"cosObject":{"size":"x"}}}]}"#).unwrap_err();
/// assert_eq!(e.status(), 400);
/// assert!(e.message().contains("Records[0].cos.cosObject.size: invalid type: string \"x\", expected u64"), "{e}");
/// ```
pub fn parse<'a, T: Deserialize<'a>>(event: &'a [u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(event);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return Error::bad_request(format!("the event is not valid JSON: {inner}"));
        }
        let name = short_type_name::<T>();
        if path == "." {
            Error::bad_request(format!("the event does not fit {name}: {inner}"))
        } else {
            Error::bad_request(format!("the event does not fit {name}: {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| Error::bad_request(format!("the event is not valid JSON: {e}")))?;
    Ok(value)
}

/// The value of `name` in a header-like map, compared in any case.
fn lookup<'m>(map: &'m Map<'_>, name: &str) -> Option<&'m str> {
    map.get(name)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .map(|v| v.as_str())
}

/// `scf_lean::events::cos::CosEvent<'_>` → `CosEvent`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

/// An event type that may borrow from the request body: `Of<'a>` is the type borrowing for
/// `'a`. Every event type here implements it; implement it for your own borrowing types in
/// one line:
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Order<'a> { #[serde(borrow)] id: std::borrow::Cow<'a, str>, qty: u32 }
/// impl scf_lean::events::Event for Order<'_> { type Of<'a> = Order<'a>; }
/// ```
pub trait Event {
    /// This type, borrowing from an event that lives for `'a`.
    type Of<'a>: Deserialize<'a>;

    /// A [`Function`] over this event type: the event is [`parse`]d (a 400 naming the bad
    /// field if it does not fit) and the returned value is serialized as the JSON answer.
    fn handler<R, F>(f: F) -> Handler<Self, F>
    where
        Self: Sized,
        R: Serialize,
        F: for<'a> FnMut(Self::Of<'a>, &Context<'a>) -> Result<R, Error>,
    {
        Handler(f, PhantomData)
    }
}

/// See [`Event::handler`].
pub struct Handler<E, F>(F, PhantomData<fn(E)>);

impl<E, R, F> Function for Handler<E, F>
where
    E: Event,
    R: Serialize,
    F: for<'a> FnMut(E::Of<'a>, &Context<'a>) -> Result<R, Error>,
{
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let e = parse::<E::Of<'a>>(event)?;
        out.json(&(self.0)(e, ctx)?)
    }
}

macro_rules! event_types {
    ($($t:ident),*) => {
        $(impl Event for $t<'_> {
            type Of<'a> = $t<'a>;
        })*
    };
}

event_types!(
    TimerEvent,
    CosEvent,
    CkafkaEvent,
    CmqEvent,
    ClsEvent,
    ClbRequest,
    ApiGatewayRequest
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_query_value_accepts_bool_string_and_array() {
        let q: Query = serde_json::from_str(r#"{"a":true,"b":"x","c":["1","2"],"d":[]}"#).unwrap();
        assert_eq!(q["a"], QueryValue::Flag(true));
        assert_eq!(q["b"].first(), Some("x"));
        assert_eq!(q["c"].values(), [Str::new("1"), Str::new("2")]);
        assert_eq!(q["d"].first(), None);
        assert_eq!(q["a"].first(), None);
        assert!(serde_json::from_str::<Query>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<Query>(r#"{"a":[1]}"#).is_err());
    }

    #[test]
    fn test_parse_names_the_path_and_the_type() {
        let e = parse::<TimerEvent>(br#"{"Type":"timer","TriggerName":5}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().starts_with(
                "the event does not fit TimerEvent: TriggerName: invalid type: integer `5`"
            ),
            "{e}"
        );
        let e = parse::<TimerEvent>(br#"{"Type":"ti"#).unwrap_err();
        assert!(
            e.message().starts_with("the event is not valid JSON: "),
            "{e}"
        );
        let e =
            parse::<TimerEvent>(br#"{"Type":"timer","TriggerName":"t","Time":"x"} x"#).unwrap_err();
        assert!(
            e.message()
                .starts_with("the event is not valid JSON: trailing"),
            "{e}"
        );
        let e = parse::<TimerEvent>(b"5").unwrap_err();
        assert!(
            e.message().starts_with(
                "the event does not fit TimerEvent: invalid type: integer `5`, expected struct TimerEvent"
            ),
            "{e}"
        );
    }

    #[test]
    fn test_short_type_name() {
        assert_eq!(short_type_name::<CosEvent>(), "CosEvent");
        assert_eq!(short_type_name::<u8>(), "u8");
        assert_eq!(short_type_name::<Vec<CosEvent>>(), "Vec");
    }
}
