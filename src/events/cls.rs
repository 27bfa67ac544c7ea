//! The CLS (log service) trigger.

use serde::{Deserialize, Serialize};

use super::Str;
use crate::Error;

/// The most a CLS event's `data` may decompress to by default (16 MiB), so that the records of
/// a CLS event fit the smallest instance (64 MB) beside the server's memory budget (32 MiB).
/// A gzip bomb stops here with a 400, before anything is inflated: the gzip trailer states the
/// size, and a stream that inflates past what it stated is refused when it reaches that size.
/// [`ClsData::decode_into_with_limit`] takes another limit.
pub const CLS_MAX_DECODED_BYTES: usize = 16 << 20;

/// Log records shipped by CLS: `{"clslogs":{"data":"<Base64 of gzip of JSON>"}}`.
///
/// ```
/// # let event = include_bytes!("../../events/cls.json");
/// use scf_lean::events::{ClsEvent, parse};
/// let e: ClsEvent = parse(event).unwrap();
/// let mut buf = Vec::new(); // keep it in your function to reuse it
/// let logs = e.clslogs.decode_into(&mut buf).unwrap();
/// assert_eq!(logs.topic_name, "testname");
/// assert_eq!(logs.records[0].content, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ClsEvent<'a> {
    /// `clslogs`.
    pub clslogs: ClsData<'a>,
}

/// `clslogs`: the compressed records.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ClsData<'a> {
    /// Base64 of the gzip of the [`ClsLogs`] JSON.
    pub data: Str<'a>,
}

impl ClsData<'_> {
    /// Decodes `data` (Base64, then gzip) into `buf` (cleared first) and parses the records,
    /// which borrow from `buf`.
    ///
    /// # Errors
    /// A 400 if `data` is not Base64 of gzip, decompresses past [`CLS_MAX_DECODED_BYTES`], or
    /// is not the records' JSON (naming the bad field, as [`parse`](super::parse) does).
    pub fn decode_into<'b>(&self, buf: &'b mut Vec<u8>) -> Result<ClsLogs<'b>, Error> {
        self.decode_into_with_limit(buf, CLS_MAX_DECODED_BYTES)
    }

    /// [`ClsData::decode_into`] with another limit on the decompressed size, in bytes. The
    /// memory it takes is the compressed data, decoded from Base64, and then the decompressed
    /// records: `buf` grows by exactly their size.
    ///
    /// # Errors
    /// As [`ClsData::decode_into`].
    pub fn decode_into_with_limit<'b>(
        &self,
        buf: &'b mut Vec<u8>,
        limit: usize,
    ) -> Result<ClsLogs<'b>, Error> {
        buf.clear();
        let mut gz = Vec::new();
        super::decode_base64(&self.data, &mut gz)
            .map_err(|e| Error::bad_request(format!("clslogs.data: {}", e.message())))?;
        super::codec::gunzip(&gz, limit, buf)
            .map_err(|e| Error::bad_request(format!("clslogs.data: {e}")))?;
        drop(gz);
        super::parse(buf)
    }
}

/// The records of a CLS event, as [`ClsData::decode_into`] gives them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ClsLogs<'a> {
    /// `topic_id`.
    #[serde(default)]
    pub topic_id: Str<'a>,
    /// `topic_name`.
    #[serde(default)]
    pub topic_name: Str<'a>,
    /// The records.
    #[serde(default)]
    pub records: Vec<ClsRecord<'a>>,
}

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct ClsRecord<'a> {
    /// When it was logged, in microseconds since the Unix epoch, as text (CLS writes a string;
    /// a number is accepted too): see [`ClsRecord::timestamp_us`].
    #[serde(deserialize_with = "super::str::str_or_number")]
    pub timestamp: Str<'a>,
    /// The log line.
    pub content: Str<'a>,
}

impl ClsRecord<'_> {
    /// The timestamp as a number of microseconds, if it is one.
    pub fn timestamp_us(&self) -> Option<u64> {
        self.timestamp.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_sample_decodes() {
        let e: ClsEvent = parse(include_bytes!("../../events/cls.json")).unwrap();
        let mut buf = Vec::new();
        let logs = e.clslogs.decode_into(&mut buf).unwrap();
        assert_eq!(logs.topic_id, "xxxx-xx-xx-xx-yyyyyyyy");
        assert_eq!(logs.records.len(), 2);
        assert_eq!(logs.records[1].timestamp_us(), Some(1_605_578_090_000_040));
        assert!(logs.records[0].content.is_borrowed());
    }

    #[test]
    fn test_bad_data_is_a_400_that_says_where() {
        let mut buf = Vec::new();
        for (data, want) in [
            ("***", "clslogs.data: invalid Base64 at byte 0"),
            ("aGVsbG8=", "clslogs.data: not gzip data"),
        ] {
            let d = ClsData {
                data: Str::new(data),
            };
            let e = d.decode_into(&mut buf).unwrap_err();
            assert_eq!((e.status(), e.message()), (400, want));
        }
    }
}
