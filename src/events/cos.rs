//! The COS (object storage) trigger.

use serde::{Deserialize, Serialize};

use super::{Map, Str};

/// Objects created or removed in a bucket: `{"Records":[{"cos":{...},"event":{...}}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosEvent<'a> {
    /// One record per object.
    #[serde(rename = "Records")]
    pub records: Vec<CosRecord<'a>>,
}

/// One object and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosRecord<'a> {
    /// The bucket and the object.
    pub cos: CosEntity<'a>,
    /// The event (`cos:ObjectCreated:*`, `cos:ObjectRemove:*`, ...).
    pub event: CosEventInfo<'a>,
}

/// `Records[].cos`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosEntity<'a> {
    /// `cosSchemaVersion` (`"1.0"`).
    #[serde(rename = "cosSchemaVersion", default)]
    pub schema_version: Str<'a>,
    /// `cosObject`.
    #[serde(rename = "cosObject")]
    pub object: CosObject<'a>,
    /// `cosBucket`.
    #[serde(rename = "cosBucket")]
    pub bucket: CosBucket<'a>,
    /// `cosNotificationId`.
    #[serde(rename = "cosNotificationId", default)]
    pub notification_id: Str<'a>,
}

/// `Records[].cos.cosObject`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosObject<'a> {
    /// The object's URL.
    #[serde(default)]
    pub url: Str<'a>,
    /// Metadata: `Content-Type`, `x-cos-request-id`, `x-cos-meta-*`...
    #[serde(default)]
    pub meta: Map<'a>,
    /// Version id; empty without versioning.
    #[serde(default)]
    pub vid: Str<'a>,
    /// `/<appid>/<bucket>/<path>`: see [`CosObject::path`] for the key inside the bucket.
    pub key: Str<'a>,
    /// Size in bytes.
    pub size: u64,
}

impl CosObject<'_> {
    /// The object's key inside its bucket: `key` without the leading `/<appid>/<bucket>/`
    /// (unchanged if it does not start that way).
    ///
    /// ```
    /// # use scf_lean::events::CosEvent;
    /// let e: CosEvent = scf_lean::events::parse(br#"{"Records":[{"cos":{"cosObject":{"key":"/1253970026/testpic/dir/a.jpg","size":1},
    ///   "cosBucket":{"region":"cd","name":"testpic","appid":"1253970026"}},"event":{"eventName":"cos:ObjectCreated:Put"}}]}"#).unwrap();
    /// assert_eq!(e.records[0].cos.object.path(), "dir/a.jpg");
    /// ```
    pub fn path(&self) -> &str {
        let k = self.key.strip_prefix('/').unwrap_or(&self.key);
        match k.split_once('/').and_then(|(_, rest)| rest.split_once('/')) {
            Some((_, path)) if self.key.starts_with('/') => path,
            _ => &self.key,
        }
    }

    /// A metadata value by name, in any case (`content-type` finds `Content-Type`).
    pub fn meta(&self, name: &str) -> Option<&str> {
        super::lookup(&self.meta, name)
    }
}

/// `Records[].cos.cosBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosBucket<'a> {
    /// Region (`"cd"`, `"ap-guangzhou"`...).
    #[serde(default)]
    pub region: Str<'a>,
    /// Bucket name without the appid suffix.
    pub name: Str<'a>,
    /// The owner's AppId (a string or a number in the event, kept as text).
    #[serde(default, deserialize_with = "super::str::str_or_number")]
    pub appid: Str<'a>,
}

/// `Records[].event`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosEventInfo<'a> {
    /// `cos:ObjectCreated:Put`, `cos:ObjectRemove:Delete`...
    #[serde(rename = "eventName")]
    pub name: Str<'a>,
    /// `eventVersion`.
    #[serde(rename = "eventVersion", default)]
    pub version: Str<'a>,
    /// `eventTime`: Unix seconds.
    #[serde(rename = "eventTime", default)]
    pub time: u64,
    /// `eventSource`: `qcs::cos`.
    #[serde(rename = "eventSource", default)]
    pub source: Str<'a>,
    /// `requestParameters`: who made the request.
    #[serde(rename = "requestParameters", default)]
    pub request_parameters: CosRequestParameters<'a>,
    /// `eventQueue`.
    #[serde(rename = "eventQueue", default)]
    pub queue: Str<'a>,
    /// `reservedInfo`.
    #[serde(rename = "reservedInfo", default)]
    pub reserved_info: Str<'a>,
    /// `reqid`.
    #[serde(rename = "reqid", default)]
    pub request_id: u64,
}

impl CosEventInfo<'_> {
    /// Whether this is an `ObjectCreated` event.
    pub fn is_created(&self) -> bool {
        self.name.starts_with("cos:ObjectCreated:")
    }

    /// Whether this is an `ObjectRemove` event.
    pub fn is_removed(&self) -> bool {
        self.name.starts_with("cos:ObjectRemove:")
    }
}

/// `Records[].event.requestParameters`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CosRequestParameters<'a> {
    /// `requestSourceIP`.
    #[serde(rename = "requestSourceIP", default)]
    pub source_ip: Str<'a>,
    /// `requestHeaders` (the request's `Authorization` signature among them).
    #[serde(rename = "requestHeaders", default)]
    pub headers: Map<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_path_inside_the_bucket() {
        let obj = |key: &'static str| CosObject {
            url: Str::default(),
            meta: Map::new(),
            vid: Str::default(),
            key: Str::new(key),
            size: 0,
        };
        assert_eq!(obj("/125/bucket/a/b.jpg").path(), "a/b.jpg");
        assert_eq!(obj("/125/bucket/x").path(), "x");
        assert_eq!(obj("/125/bucket").path(), "/125/bucket");
        assert_eq!(obj("plain/key").path(), "plain/key");
        assert_eq!(obj("").path(), "");
    }

    #[test]
    fn test_size_of_the_wrong_type_names_the_path() {
        let e = parse::<CosEvent>(
            br#"{"Records":[{"cos":{"cosObject":{"key":"k","size":1},"cosBucket":{"name":"b"}},
                "event":{"eventName":"cos:ObjectCreated:Put"}},
                {"cos":{"cosObject":{"key":"k","size":"x"}}}]}"#,
        )
        .unwrap_err();
        assert!(
            e.message().contains(
                r#"CosEvent: Records[1].cos.cosObject.size: invalid type: string "x", expected u64"#
            ),
            "{e}"
        );
    }
}
