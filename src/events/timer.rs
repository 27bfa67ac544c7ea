//! The timer trigger.

use serde::de::{Deserializer, Error as _, Unexpected};
use serde::{Deserialize, Serialize};

use super::Str;

/// A timer trigger fired:
/// `{"Type":"timer","TriggerName":"EveryDay","Time":"2019-02-21T11:49:00Z","Message":"user define msg body"}`.
///
/// `Type` is checked: `"timer"` in any case (one doc version writes `"Timer"`); anything else
/// does not fit, so a timer function sent another trigger's event answers a 400. SCF also sets
/// `X-Scf-Trigger-Src: timer` ([`Context::is_timer`](crate::Context::is_timer)).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub struct TimerEvent<'a> {
    /// `"timer"` as SCF wrote it.
    #[serde(rename = "Type", deserialize_with = "timer_type")]
    pub kind: Str<'a>,
    /// The trigger's name.
    #[serde(rename = "TriggerName")]
    pub trigger_name: Str<'a>,
    /// When it fired, RFC 3339 UTC (`2019-02-21T11:49:00Z`).
    #[serde(rename = "Time")]
    pub time: Str<'a>,
    /// The message set on the trigger; empty if none.
    #[serde(rename = "Message", default)]
    pub message: Str<'a>,
}

fn timer_type<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
    let s = Str::deserialize(d)?;
    if s.eq_ignore_ascii_case("timer") {
        Ok(s)
    } else {
        Err(D::Error::invalid_value(
            Unexpected::Str(&s),
            &"\"timer\" (a timer trigger event)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;

    #[test]
    fn test_both_spellings_of_the_type() {
        for t in ["timer", "Timer"] {
            let json = format!(
                r#"{{"Type":"{t}","TriggerName":"EveryDay","Time":"2019-02-21T11:49:00Z","Message":"m","Extra":1}}"#
            );
            let e: TimerEvent = parse(json.as_bytes()).unwrap();
            assert_eq!(e.kind, t);
            assert_eq!(e.trigger_name, "EveryDay");
            assert_eq!(e.message, "m");
            assert!(e.time.is_borrowed());
        }
    }

    #[test]
    fn test_other_type_is_refused_with_its_path() {
        let e = parse::<TimerEvent>(br#"{"Type":"cos","TriggerName":"t","Time":"x"}"#).unwrap_err();
        assert!(
            e.message().starts_with(
                r#"the event does not fit TimerEvent: Type: invalid value: string "cos""#
            ),
            "{e}"
        );
        let e = parse::<TimerEvent>(br#"{"TriggerName":"t","Time":"x"}"#).unwrap_err();
        assert!(e.message().contains("missing field `Type`"), "{e}");
    }

    #[test]
    fn test_message_may_be_missing() {
        let e: TimerEvent = parse(br#"{"Type":"timer","TriggerName":"t","Time":"x"}"#).unwrap();
        assert_eq!(e.message, "");
    }
}
