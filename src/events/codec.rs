//! gzip (CLS data).

/// Appends the content of one gzip member (RFC 1952) to `out`, at most `limit` bytes, checking
/// the CRC-32 and the length in the trailer.
///
/// The trailer's length (ISIZE) sizes the output before anything is inflated: over `limit`, the
/// data is refused at once; otherwise `out` grows by exactly that much and the deflate stream
/// is inflated straight into it, so the memory used is the content's size and no more. A stream
/// that inflates to more than it declared is refused as corrupt when it reaches that size.
pub(crate) fn gunzip(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    // ID1 ID2 CM FLG MTIME(4) XFL OS
    const RESERVED: u8 = 0xe0;
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let bad = "not gzip data";
    if data.len() < 18 || data[..3] != [0x1f, 0x8b, 8] || data[3] & RESERVED != 0 {
        return Err(bad);
    }
    let flags = data[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = usize::from(u16::from_le_bytes([
            *data.get(at).ok_or(bad)?,
            *data.get(at + 1).ok_or(bad)?,
        ]));
        at += 2 + xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data.get(at..).ok_or(bad)?;
            at += rest.iter().position(|&b| b == 0).ok_or(bad)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    // The deflate stream, then CRC32 and ISIZE (both little-endian).
    if at + 8 > data.len() {
        return Err(bad);
    }
    let (deflate, trailer) = data[at..].split_at(data.len() - at - 8);
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
    if size > limit {
        return Err("the data is larger than the limit");
    }
    let start = out.len();
    out.resize(start + size, 0);
    let mut inflater = Box::<DecompressorOxide>::default();
    let (status, _, written) = decompress(
        &mut inflater,
        deflate,
        &mut out[start..],
        0,
        inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    let result = match status {
        TINFLStatus::Done if written == size && crc32(&out[start..]) == crc => Ok(()),
        TINFLStatus::Done => Err("the gzip data is corrupt (checksum)"),
        TINFLStatus::HasMoreOutput => Err("the gzip data is corrupt (larger than it says)"),
        _ => Err("the gzip data is corrupt"),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// CRC-32 (ISO-HDLC, as gzip uses it), one table lookup a byte.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// A gzip member with a stored (uncompressed) deflate block, built by hand.
    fn gzip_stored(content: &[u8], flags: u8, extra: &[u8]) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        g.extend_from_slice(extra);
        let len = content.len() as u16;
        g.push(1); // BFINAL, stored
        g.extend_from_slice(&len.to_le_bytes());
        g.extend_from_slice(&(!len).to_le_bytes());
        g.extend_from_slice(content);
        g.extend_from_slice(&crc32(content).to_le_bytes());
        g.extend_from_slice(&(content.len() as u32).to_le_bytes());
        g
    }

    #[test]
    fn test_gunzip_stored_block_with_header_fields() {
        let mut out = Vec::new();
        gunzip(&gzip_stored(b"hello", 0, b""), 100, &mut out).unwrap();
        assert_eq!(out, b"hello");
        // FEXTRA + FNAME + FCOMMENT + FHCRC.
        let extra = [2, 0, b'x', b'y', b'n', 0, b'c', 0, 0xaa, 0xbb];
        out.clear();
        gunzip(&gzip_stored(b"hi", 0x1e, &extra), 100, &mut out).unwrap();
        assert_eq!(out, b"hi");
    }

    #[test]
    fn test_gunzip_refuses_corruption_and_excess() {
        let mut out = Vec::new();
        let good = gzip_stored(b"hello", 0, b"");
        assert_eq!(
            gunzip(&good, 4, &mut out),
            Err("the data is larger than the limit")
        );
        // A trailer that understates the content: refused once the content reaches it.
        let mut liar = good.clone();
        let n = liar.len();
        liar[n - 4..].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            gunzip(&liar, 100, &mut out),
            Err("the gzip data is corrupt (larger than it says)")
        );
        // One that overstates it.
        liar[n - 4..].copy_from_slice(&6u32.to_le_bytes());
        assert!(gunzip(&liar, 100, &mut out).is_err());
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert!(gunzip(&bad_crc, 100, &mut out).is_err());
        for cut in 0..good.len() {
            assert!(gunzip(&good[..cut], 100, &mut out).is_err(), "{cut}");
        }
        assert!(gunzip(b"not gzip at all, no", 100, &mut out).is_err());
        assert!(out.is_empty());
    }
}
