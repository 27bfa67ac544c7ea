//! The request target as a function reads it: percent-decoding (RFC 3986 §2.1), query
//! parameters (`name=value` pairs split on `&`, `+` as a space, as HTML forms and
//! `URLSearchParams` write them) and path segments.
//!
//! Everything borrows from the request: a piece with no `%` (and, in a query, no `+`) comes
//! back as `Cow::Borrowed`, without an allocation. A `%` not followed by two hex digits stays
//! as it is; decoded bytes that are not UTF-8 become U+FFFD, as `String::from_utf8_lossy` does.
//! No router: [`Request::segments`](crate::Request::segments) is what a `match` routes on.

use std::borrow::Cow;

/// `s` percent-decoded; with `plus`, a `+` is a space too (the query's form encoding).
pub(crate) fn decode(s: &str, plus: bool) -> Cow<'_, str> {
    let special = |b: u8| b == b'%' || (plus && b == b'+');
    let Some(first) = s.bytes().position(special) else {
        return Cow::Borrowed(s);
    };
    decode_from(s, first, plus)
}

#[cold]
#[inline(never)]
fn decode_from(s: &str, first: usize, plus: bool) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    while i < b.len() {
        match b[i] {
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(t) => Cow::Owned(t),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The query's parameters in order, decoded: see [`Request::query_params`](crate::Request::query_params).
#[derive(Clone, Debug)]
pub struct QueryParams<'a>(std::str::Split<'a, char>);

impl<'a> QueryParams<'a> {
    pub(crate) fn new(query: &'a str) -> QueryParams<'a> {
        QueryParams(query.split('&'))
    }
}

impl<'a> Iterator for QueryParams<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let pair = self.0.find(|p| !p.is_empty())?;
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        Some((decode(name, true), decode(value, true)))
    }
}

/// The path's segments in order, each decoded: see [`Request::segments`](crate::Request::segments).
#[derive(Clone, Debug)]
pub struct Segments<'a>(std::str::Split<'a, char>);

impl<'a> Segments<'a> {
    pub(crate) fn new(path: &'a str) -> Segments<'a> {
        Segments(path.split('/'))
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.find(|s| !s.is_empty()).map(|s| decode(s, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_borrows_when_nothing_is_encoded() {
        assert!(matches!(decode("plain-text_1.2~", true), Cow::Borrowed(_)));
        assert!(matches!(decode("a+b", false), Cow::Borrowed("a+b")));
        assert_eq!(decode("a+b", true), "a b");
        assert_eq!(decode("Ada%20Lovelace", true), "Ada Lovelace");
        assert_eq!(decode("%e4%BD%A0%E5%A5%BD", false), "你好");
        assert_eq!(decode("%2F%3f%25", false), "/?%");
    }

    #[test]
    fn test_malformed_escapes_stay_and_bad_utf8_is_replaced() {
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("%4g%41", false), "%4gA");
        assert_eq!(decode("a%FFb", false), "a\u{FFFD}b");
        assert_eq!(decode("%C3", false), "\u{FFFD}");
    }

    #[test]
    fn test_query_params() {
        let q: Vec<_> = QueryParams::new("name=Ada%20Lovelace&&flag&x=1=2&a+b=c+d&=v").collect();
        let q: Vec<(&str, &str)> = q.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(
            q,
            [
                ("name", "Ada Lovelace"),
                ("flag", ""),
                ("x", "1=2"),
                ("a b", "c d"),
                ("", "v")
            ]
        );
        assert_eq!(QueryParams::new("").count(), 0);
    }

    #[test]
    fn test_segments_decode_each_and_skip_empty_ones() {
        let s: Vec<_> = Segments::new("/users/%37//a%2Fb/").collect();
        assert_eq!(s, ["users", "7", "a/b"]);
        assert_eq!(Segments::new("/").count(), 0);
        assert!(Segments::new("/a/b").all(|s| matches!(s, Cow::Borrowed(_))));
    }
}
