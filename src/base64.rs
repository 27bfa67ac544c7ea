//! Standard Base64 (RFC 4648 §4): encoding with padding, for bodies that are not text;
//! decoding, for bodies marked `isBase64Encoded` and CLS data.

use crate::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the Base64 encoding of `input` to `out`.
///
/// ```
/// let mut s = Vec::new();
/// scf_lean::base64::encode_into(b"hi!?", &mut s);
/// assert_eq!(s, b"aGkhPw==");
/// ```
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend([18, 12, 6, 0].map(|s| ALPHABET[(n >> s) as usize & 63]));
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend([
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend([
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// Decodes standard Base64 (RFC 4648 §4) into `out` (appended). Padding is optional; ASCII
/// whitespace (a line-wrapped encoder's) is skipped.
///
/// # Errors
/// A 400 naming the first byte that is not Base64, or a length no encoder produces.
///
/// ```
/// let mut v = Vec::new();
/// scf_lean::base64::decode_into("aGkhPw==", &mut v).unwrap();
/// assert_eq!(v, b"hi!?");
/// assert!(scf_lean::base64::decode_into("a*==", &mut v).is_err());
/// ```
pub fn decode_into(input: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    out.reserve(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut n = 0u8;
    let mut padding = 0usize;
    for (i, &b) in input.as_bytes().iter().enumerate() {
        if b.is_ascii_whitespace() {
            continue;
        }
        if b == b'=' {
            padding += 1;
            continue;
        }
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(bad_base64(i)),
        };
        if padding > 0 {
            // Data after '=': not Base64.
            return Err(bad_base64(i));
        }
        acc = acc << 6 | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        0 => {}
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {
            return Err(Error::bad_request(
                "invalid Base64: the length is not a whole number of bytes",
            ));
        }
    }
    if padding > 2 {
        return Err(Error::bad_request("invalid Base64: too much padding"));
    }
    Ok(())
}

fn bad_base64(at: usize) -> Error {
    Error::bad_request(format!("invalid Base64 at byte {at}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rfc4648_vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"fooba", b"Zm9vYmE="),
            (b"foobar", b"Zm9vYmFy"),
            (b"\xff\xfe\x00", b"//4A"),
        ];
        for (i, o) in cases {
            let mut v = Vec::new();
            encode_into(i, &mut v);
            assert_eq!(&v, o);
        }
    }

    #[test]
    fn test_base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let mut enc = Vec::new();
            encode_into(&data[..len], &mut enc);
            let enc = String::from_utf8(enc).unwrap();
            let mut dec = Vec::new();
            decode_into(&enc, &mut dec).unwrap();
            assert_eq!(dec, &data[..len]);
            // Without padding too.
            let mut dec = Vec::new();
            decode_into(enc.trim_end_matches('='), &mut dec).unwrap();
            assert_eq!(dec, &data[..len]);
        }
    }

    #[test]
    fn test_base64_refuses_garbage() {
        let mut v = Vec::new();
        for bad in ["a", "abcde", "ab=c", "ab*d", "ab===", "é"] {
            assert!(decode_into(bad, &mut v).is_err(), "{bad}");
        }
        v.clear();
        decode_into("aG k\nh", &mut v).unwrap();
        assert_eq!(v, b"hi!");
    }
}
