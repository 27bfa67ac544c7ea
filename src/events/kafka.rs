//! The CKafka trigger.

use serde::{Deserialize, Serialize};

use super::Str;

/// Messages from a CKafka topic, possibly several per event:
/// `{"Records":[{"Ckafka":{"topic","partition","offset","msgKey","msgBody"}}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CkafkaEvent<'a> {
    /// One record per message, in offset order.
    #[serde(rename = "Records")]
    pub records: Vec<CkafkaRecord<'a>>,
}

/// `Records[]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CkafkaRecord<'a> {
    /// `Ckafka`.
    #[serde(rename = "Ckafka")]
    pub ckafka: CkafkaMessage<'a>,
}

/// `Records[].Ckafka`: one message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct CkafkaMessage<'a> {
    /// The topic.
    pub topic: Str<'a>,
    /// The partition.
    pub partition: u32,
    /// The message's offset in its partition.
    pub offset: u64,
    /// `msgKey`: the key (`"None"` when the producer set none, as SCF writes it).
    #[serde(rename = "msgKey", default)]
    pub key: Str<'a>,
    /// `msgBody`: the message.
    #[serde(rename = "msgBody")]
    pub body: Str<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_batch_and_bad_offset() {
        let e: CkafkaEvent = parse(
            br#"{"Records":[{"Ckafka":{"topic":"t","partition":1,"offset":36,"msgKey":"None","msgBody":"a"}},
                {"Ckafka":{"topic":"t","partition":1,"offset":37,"msgKey":"None","msgBody":"b\n"}}]}"#,
        )
        .unwrap();
        assert_eq!(e.records.len(), 2);
        assert_eq!(e.records[1].ckafka.offset, 37);
        assert_eq!(e.records[1].ckafka.body, "b\n");
        assert!(!e.records[1].ckafka.body.is_borrowed());
        assert!(e.records[0].ckafka.body.is_borrowed());
        let e = parse::<CkafkaEvent>(
            br#"{"Records":[{"Ckafka":{"topic":"t","partition":1,"offset":-1,"msgBody":"a"}}]}"#,
        )
        .unwrap_err();
        assert!(
            e.message()
                .contains("Records[0].Ckafka.offset: invalid value: integer `-1`"),
            "{e}"
        );
    }
}
