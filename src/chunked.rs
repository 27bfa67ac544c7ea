//! The chunked transfer coding (RFC 9112 §7.1), decoded in place in the read buffer.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! Data bytes move left over the framing that preceded them, so the decoded body ends up
//! contiguous right after the head, and what follows the body (a pipelined request) right after
//! it. Every line in the framing must end in CRLF: a bare LF or a bare CR is an error, because a
//! proxy that reads them differently would see another request boundary (request smuggling).
//! Extensions and trailers are checked and skipped; together they may use
//! `MAX_CHUNK_META_BYTES` per body.

use crate::error::Reject;

/// Most hex digits a chunk size may have (leading zeros included): 16 fill a `u64`.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    Size,
    /// After the size: BWS, then `;` or CR.
    AfterSize,
    /// Inside the chunk extensions, until CR.
    Ext,
    /// LF after the size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// CR after chunk data.
    DataCr,
    /// LF after chunk data.
    DataLf,
    /// Start of a trailer line, or the final CRLF.
    TrailerStart,
    /// The field name of a trailer line, until `:`.
    TrailerName,
    /// The value of a trailer field line, until CR.
    Trailer,
    /// LF after a trailer line.
    TrailerLf,
    /// LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// What one call of [`Chunked::decode`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The decoded body now ends here.
    pub data_end: usize,
    /// The raw bytes not yet consumed now lie in `data_end..end`.
    pub end: usize,
    /// The last chunk and the trailers are in.
    pub done: bool,
}

/// Decoder state of one chunked body, kept across reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunked {
    state: State,
    /// Size of the chunk being read, or data bytes left in it.
    size: u64,
    digits: u8,
    /// Decoded body bytes so far.
    total: u64,
    /// Extension and trailer bytes so far.
    meta: usize,
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            total: 0,
            meta: 0,
        }
    }

    /// Decodes the raw bytes `buf[pos..end]`. Data moves to `buf[pos..]`; the bytes not yet
    /// consumed (a partial framing line, or what follows the body) move right after it.
    ///
    /// Returns where the decoded body and the raw bytes now end, and whether the body is done.
    ///
    /// # Errors
    /// 400 for bad framing or too much metadata, 413 past `max_body`.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        end: usize,
        max_body: usize,
        max_meta: usize,
    ) -> Result<Decoded, Reject> {
        let mut src = pos;
        let mut dst = pos;
        while src < end && self.state != State::Done {
            if self.state == State::Data {
                let n = (end - src).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                buf.copy_within(src..src + n, dst);
                src += n;
                dst += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = buf[src];
            src += 1;
            self.state = self.step(b, max_body, max_meta)?;
        }
        buf.copy_within(src..end, dst);
        Ok(Decoded {
            data_end: dst,
            end: dst + (end - src),
            done: self.state == State::Done,
        })
    }

    /// One framing byte.
    fn step(&mut self, b: u8, max_body: usize, max_meta: usize) -> Result<State, Reject> {
        use State::*;
        Ok(match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(Reject::BadRequest("chunk size too long"));
                }
                self.digits += 1;
                self.size = (self.size << 4) | u64::from(hex(b));
                Size
            }
            (Size, _) if self.digits == 0 => return Err(Reject::BadRequest("invalid chunk size")),
            // BWS after the size is metadata too: it counts against the limit.
            (Size | AfterSize, b' ' | b'\t') => self.meta(AfterSize, max_meta)?,
            (Size | AfterSize, b';') => self.meta(Ext, max_meta)?,
            (Size | AfterSize, b'\r') => SizeLf,
            (Size | AfterSize, _) => return Err(Reject::BadRequest("invalid chunk size")),
            (Ext, b'\r') => SizeLf,
            (Ext, _) if is_text(b) => self.meta(Ext, max_meta)?,
            (Ext, _) => return Err(Reject::BadRequest("invalid chunk extension")),
            (SizeLf, b'\n') => {
                let size = std::mem::take(&mut self.size);
                self.digits = 0;
                self.total += size;
                if self.total > max_body as u64 {
                    return Err(Reject::PayloadTooLarge);
                }
                self.size = size;
                if size == 0 { TrailerStart } else { Data }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => EndLf,
            // trailer-section = *( field-line CRLF ); field-line = field-name ":" OWS value OWS
            (TrailerStart | TrailerName, _) if is_tchar(b) => self.meta(TrailerName, max_meta)?,
            (TrailerName, b':') => self.meta(Trailer, max_meta)?,
            (TrailerStart, _) | (TrailerName, _) if b != b'\n' => {
                return Err(Reject::BadRequest("invalid trailer field"));
            }
            (Trailer, _) if is_text(b) => self.meta(Trailer, max_meta)?,
            (Trailer, b'\r') => TrailerLf,
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => {
                return Err(Reject::BadRequest(
                    "invalid chunked framing: lines must end in CRLF",
                ));
            }
        })
    }

    /// Counts one extension or trailer byte against the limit.
    fn meta(&mut self, next: State, max_meta: usize) -> Result<State, Reject> {
        self.meta += 1;
        if self.meta > max_meta {
            return Err(Reject::BadRequest(
                "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES",
            ));
        }
        Ok(next)
    }
}

/// A chunked body decoded from input fed in pieces, as [`decode_in_pieces`] gives it.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pieces {
    /// The decoded body.
    pub body: Vec<u8>,
    /// The raw bytes after it (a pipelined request), or not yet consumed.
    pub rest: Vec<u8>,
    /// Whether the last chunk and the trailers were in.
    pub done: bool,
}

/// Decodes `raw` fed in pieces cut at `cuts` (increasing offsets), as the connection feeds
/// reads, checking that the decoder never moves backwards or past the input; once the body is
/// done, the rest of `raw` follows it. For the unit tests and the fuzz harness, whose oracle is
/// the same body one-shot and in pieces.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_in_pieces(
    raw: &[u8],
    cuts: &[usize],
    max_body: usize,
    max_meta: usize,
) -> Result<Pieces, Reject> {
    let mut buf = vec![0u8; raw.len()];
    let mut c = Chunked::new();
    let (mut data_end, mut end, mut fed) = (0, 0, 0);
    let mut done = false;
    for &cut in cuts.iter().chain(std::iter::once(&raw.len())) {
        buf[end..end + (cut - fed)].copy_from_slice(&raw[fed..cut]);
        end += cut - fed;
        fed = cut;
        let d = c.decode(&mut buf, data_end, end, max_body, max_meta)?;
        assert!(
            data_end <= d.data_end && d.data_end <= d.end && d.end <= end,
            "decoder moved backwards or past end"
        );
        assert!(d.data_end <= max_body, "decoded body past its limit");
        (data_end, end) = (d.data_end, d.end);
        if d.done {
            buf[end..end + (raw.len() - fed)].copy_from_slice(&raw[fed..]);
            end += raw.len() - fed;
            done = true;
            break;
        }
    }
    Ok(Pieces {
        body: buf[..data_end].to_vec(),
        rest: buf[data_end..end].to_vec(),
        done,
    })
}

/// tchar (RFC 9110 §5.6.2): what a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTAB, SP, VCHAR, obs-text: what a field value or extension may hold.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => (b | 0x20) - b'a' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: usize = 1 << 20;
    const META: usize = 64;

    fn decode_split(raw: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Vec<u8>), Reject> {
        match decode_in_pieces(raw, cuts, BODY, META)? {
            Pieces {
                body,
                rest,
                done: true,
            } => Ok((body, rest)),
            _ => Err(Reject::BadRequest("incomplete")),
        }
    }

    fn decode(raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Reject> {
        decode_split(raw, &[])
    }

    #[test]
    fn test_table() {
        let bad = |m| Err(Reject::BadRequest(m));
        let crlf = "invalid chunked framing: lines must end in CRLF";
        type Case<'a> = (&'a [u8], Result<(&'a [u8], &'a [u8]), Reject>);
        let cases: &[Case] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", b""))),
            (
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET",
                Ok((b"hello world", b"GET")),
            ),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok((b"0123456789", b""))),
            (
                b"a;x=1;y=\"q\"\r\n0123456789\r\n0;z\r\n\r\n",
                Ok((b"0123456789", b"")),
            ),
            (
                b"3 ;x\r\nabc\r\n0\r\nTrailer: v\r\nOther: w\r\n\r\n",
                Ok((b"abc", b"")),
            ),
            (b"000\r\n\r\n", Ok((b"", b""))),
            (b"0\r\n\r\n", Ok((b"", b""))),
            (b"\r\n", bad("invalid chunk size")),
            (b"x\r\n", bad("invalid chunk size")),
            (b"5x\r\nhello\r\n0\r\n\r\n", bad("invalid chunk size")),
            (b"5 x\r\nhello\r\n0\r\n\r\n", bad("invalid chunk size")),
            (b"-5\r\nhello\r\n0\r\n\r\n", bad("invalid chunk size")),
            (b"0x5\r\nhello\r\n0\r\n\r\n", bad("invalid chunk size")),
            (
                b"00000000000000001\r\nh\r\n0\r\n\r\n",
                bad("chunk size too long"),
            ),
            (b"ffffffffffffffff\r\n", Err(Reject::PayloadTooLarge)),
            (b"100001\r\n", Err(Reject::PayloadTooLarge)),
            (b"5\nhello\r\n0\r\n\r\n", bad("invalid chunk size")),
            (b"5\r\nhello\n0\r\n\r\n", bad(crlf)),
            (b"5\r\nhelloXX0\r\n\r\n", bad(crlf)),
            (b"5\r\nhello\r\n0\r\n\n", bad(crlf)),
            (b"5\r\nhello\r\n0\r\nT: v\n\r\n", bad(crlf)),
            (b"5\rhello\r\n0\r\n\r\n", bad(crlf)),
            (
                b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
                bad("invalid chunk extension"),
            ),
            (
                b"5;a\nb\r\nhello\r\n0\r\n\r\n",
                bad("invalid chunk extension"),
            ),
            (b"0\r\nT: a\x00\r\n\r\n", bad(crlf)),
            (b"0\r\nT\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\nT : v\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\n: v\r\n\r\n", bad("invalid trailer field")),
            (b"0\r\nT: v\r\n w\r\n\r\n", bad("invalid trailer field")),
        ];
        for (raw, want) in cases {
            let got = decode(raw);
            let want = want.map(|(b, r)| (b.to_vec(), r.to_vec()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn test_meta_limit_at_and_past_the_value() {
        let ext = |n: usize| format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(n - 1));
        assert!(decode(ext(META).as_bytes()).is_ok());
        assert_eq!(
            decode(ext(META + 1).as_bytes()),
            Err(Reject::BadRequest(
                "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES"
            ))
        );
        // A trailer field line counts whole (name, colon, value), less its CRLF.
        let trailer = |n: usize| format!("0\r\nT:{}\r\n\r\n", "t".repeat(n - 2));
        assert!(decode(trailer(META).as_bytes()).is_ok());
        assert!(decode(trailer(META + 1).as_bytes()).is_err());
        // BWS after the size counts too.
        let bws = |n: usize| format!("1{}\r\nx\r\n0\r\n\r\n", " ".repeat(n));
        assert!(decode(bws(META).as_bytes()).is_ok());
        assert_eq!(
            decode(bws(META + 1).as_bytes()),
            Err(Reject::BadRequest(
                "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES"
            ))
        );
    }

    #[test]
    fn test_body_limit_at_and_past_the_value() {
        let mut c = Chunked::new();
        let mut raw = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec();
        let n = raw.len();
        let d = c.decode(&mut raw, 0, n, 5, 0).unwrap();
        assert_eq!((d.data_end, d.end, d.done), (5, 5, true));
        let mut c = Chunked::new();
        let mut raw = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n".to_vec();
        let n = raw.len();
        assert_eq!(c.decode(&mut raw, 0, n, 5, 0), Err(Reject::PayloadTooLarge));
    }

    #[test]
    fn test_every_split_point_equals_one_shot() {
        let samples: &[&[u8]] = &[
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nPOST / HTTP/1.1\r\n",
            b"1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\n",
        ];
        for raw in samples {
            let one = decode(raw);
            for i in 0..=raw.len() {
                assert_eq!(decode_split(raw, &[i]), one, "cut at {i}");
                for j in i..=raw.len() {
                    assert_eq!(decode_split(raw, &[i, j]), one, "cut at {i},{j}");
                }
            }
            // One byte at a time.
            let all: Vec<usize> = (1..raw.len()).collect();
            assert_eq!(decode_split(raw, &all), one);
        }
    }
}
