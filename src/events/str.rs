//! [`Str`]: a string borrowed from the event when JSON allows it, owned when it must be.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// A string field of an event: borrowed from the request body when the JSON string has no
/// escapes (the usual case, no copy), owned when it has (`"a\"b"`, `"\u00e9"`).
///
/// It derefs to `str`, compares with `&str`, and works as a map key looked up by `&str`:
///
/// ```
/// use scf_lean::events::Str;
/// let s: Str = serde_json::from_str(r#""plain""#).unwrap();
/// assert!(s.is_borrowed());
/// assert_eq!(s, "plain");
/// let s: Str = serde_json::from_str(r#""esc\"aped""#).unwrap();
/// assert!(!s.is_borrowed());
/// assert_eq!(&*s, "esc\"aped");
/// ```
///
/// Serde's own `Cow<'a, str>` borrows only as a struct field marked `#[serde(borrow)]`, never
/// inside an `Option`, a `Vec` or a map; `Str` borrows wherever it is.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'a> Str<'a> {
    /// A borrowed `Str`.
    pub const fn new(s: &'a str) -> Str<'a> {
        Str(Cow::Borrowed(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the text points into the event (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    /// An owned copy that outlives the event.
    pub fn into_owned(self) -> Str<'static> {
        Str(Cow::Owned(self.0.into_owned()))
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Str<'a> {
        Str::new(s)
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str(Cow::Owned(s))
    }
}

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Str::new(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

/// A string, or a number kept as its decimal text (ids that one doc version writes as numbers
/// and another as strings).
pub(crate) fn str_or_number<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Str<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
            Ok(Str::new(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
            Ok(Str(Cow::Owned(v.to_owned())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str<'de>, E> {
            Ok(Str(Cow::Owned(itoa::Buffer::new().format(v).to_owned())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str<'de>, E> {
            Ok(Str(Cow::Owned(itoa::Buffer::new().format(v).to_owned())))
        }
    }
    d.deserialize_any(V)
}

/// [`str_or_number`] for an optional field (`null` or absent is `None`).
pub(crate) fn opt_str_or_number<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Str<'a>>, D::Error> {
    struct Wrap<'a>(Str<'a>);
    impl<'de: 'a, 'a> Deserialize<'de> for Wrap<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            str_or_number(d).map(Wrap)
        }
    }
    Ok(Option::<Wrap<'a>>::deserialize(d)?.map(|w| w.0))
}
