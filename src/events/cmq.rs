//! The CMQ trigger (topic subscriptions and queues).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Str;

/// Messages from a CMQ topic or queue:
/// `{"Records":[{"CMQ":{"type":"topic","topicOwner","topicName","subscriptionName","publishTime","msgId","requestId","msgBody","msgTag"}}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CmqEvent<'a> {
    /// One record per message.
    #[serde(rename = "Records")]
    pub records: Vec<CmqRecord<'a>>,
}

/// `Records[]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CmqRecord<'a> {
    /// `CMQ`.
    #[serde(rename = "CMQ")]
    pub cmq: CmqMessage<'a>,
}

/// `Records[].CMQ`: one message. Topic messages name the topic and the subscription, queue
/// messages the queue ([`CmqMessage::source`] gives either).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CmqMessage<'a> {
    /// `"topic"` or `"queue"`.
    #[serde(rename = "type")]
    pub kind: Str<'a>,
    /// `topicOwner`: the topic owner's account id (a number or a string in the event).
    #[serde(
        rename = "topicOwner",
        default,
        deserialize_with = "super::str::opt_str_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub topic_owner: Option<Str<'a>>,
    /// `topicName` (topic messages).
    #[serde(rename = "topicName", skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<Str<'a>>,
    /// `subscriptionName` (topic messages): this function's subscription.
    #[serde(rename = "subscriptionName", skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<Str<'a>>,
    /// `queueName` (queue messages).
    #[serde(rename = "queueName", skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<Str<'a>>,
    /// `publishTime`: RFC 3339 (`1970-01-01T00:00:00.000Z`).
    #[serde(rename = "publishTime", default)]
    pub publish_time: Str<'a>,
    /// `msgId`.
    #[serde(rename = "msgId", deserialize_with = "super::str::str_or_number")]
    pub id: Str<'a>,
    /// `requestId`: the push request's id.
    #[serde(
        rename = "requestId",
        default,
        deserialize_with = "super::str::opt_str_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<Str<'a>>,
    /// `msgBody`: the message.
    #[serde(rename = "msgBody")]
    pub body: Str<'a>,
    /// `msgTag`: an array in one doc version, a comma-separated string in another.
    #[serde(rename = "msgTag", default)]
    pub tags: CmqTags<'a>,
}

impl CmqMessage<'_> {
    /// Whether it came through a topic subscription.
    pub fn is_topic(&self) -> bool {
        self.kind.eq_ignore_ascii_case("topic")
    }

    /// Whether it came from a queue.
    pub fn is_queue(&self) -> bool {
        self.kind.eq_ignore_ascii_case("queue")
    }

    /// The topic's or the queue's name, whichever the message has.
    pub fn source(&self) -> Option<&str> {
        self.topic_name.as_deref().or(self.queue_name.as_deref())
    }
}

/// The tags of a CMQ message: `["tag1","tag2"]` or `"tag1,tag2"` both give `tag1`, `tag2`
/// (spaces around each tag trimmed, empty tags dropped).
///
/// ```
/// use scf_lean::events::CmqTags;
/// let a: CmqTags = serde_json::from_str(r#"["tag1","tag2"]"#).unwrap();
/// let b: CmqTags = serde_json::from_str(r#""tag1, tag2""#).unwrap();
/// assert_eq!(a, b);
/// assert!(b.contains("tag2"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CmqTags<'a>(pub Vec<Str<'a>>);

impl CmqTags<'_> {
    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &str) -> bool {
        self.0.iter().any(|t| t == tag)
    }

    /// The tags.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.as_str())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CmqTags<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CmqTags<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings or a comma-separated string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CmqTags(split(v).map(Str::new).collect()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CmqTags(split(v).map(|t| Str::from(t.to_owned())).collect()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CmqTags::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<Str<'de>>()? {
                    v.push(s);
                }
                Ok(CmqTags(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_tags_in_both_forms_and_null() {
        for (json, want) in [
            (r#"["tag1","tag2"]"#, &["tag1", "tag2"][..]),
            (r#""tag1,tag2""#, &["tag1", "tag2"]),
            (r#"" tag1 , ,tag2,""#, &["tag1", "tag2"]),
            (r#""""#, &[]),
            ("[]", &[]),
            ("null", &[]),
        ] {
            let t: CmqTags = serde_json::from_str(json).unwrap();
            assert_eq!(t.iter().collect::<Vec<_>>(), want, "{json}");
        }
        assert!(serde_json::from_str::<CmqTags>("5").is_err());
        let t: CmqTags = serde_json::from_str(r#""a,b""#).unwrap();
        assert!(t.0.iter().all(Str::is_borrowed));
    }

    #[test]
    fn test_topic_and_queue_messages() {
        let e: CmqEvent = parse(
            br#"{"Records":[{"CMQ":{"type":"topic","topicOwner":1200000000,"topicName":"t",
                "subscriptionName":"s","publishTime":"1970-01-01T00:00:00.000Z","msgId":"1",
                "requestId":"2","msgBody":"hi","msgTag":"a,b"}},
                {"CMQ":{"type":"queue","queueName":"q","msgId":"3","msgBody":"yo"}}]}"#,
        )
        .unwrap();
        let t = &e.records[0].cmq;
        assert!(t.is_topic() && !t.is_queue());
        assert_eq!(t.topic_owner.as_deref(), Some("1200000000"));
        assert_eq!(t.source(), Some("t"));
        assert!(t.tags.contains("b"));
        let q = &e.records[1].cmq;
        assert!(q.is_queue());
        assert_eq!(q.source(), Some("q"));
        assert_eq!(q.tags, CmqTags::default());
        let e = parse::<CmqEvent>(
            br#"{"Records":[{"CMQ":{"type":"topic","msgId":"1","msgBody":"x","msgTag":7}}]}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("Records[0].CMQ.msgTag: invalid type: integer `7`, expected an array of strings or a comma-separated string"), "{e}");
    }
}
