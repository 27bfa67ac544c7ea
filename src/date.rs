//! Dates without `std::fmt`: the HTTP `Date` header (IMF-fixdate, RFC 9110 §5.6.7) and the
//! RFC 3339 time of JSON log lines.
//!
//! ```text
//! IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
//!             ; e.g. Sun, 06 Nov 1994 08:49:37 GMT
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub const HTTP_DATE_LEN: usize = 29;

/// The `Date` value of the current second, formatted at most once a second.
pub struct HttpDate {
    secs: u64,
    text: [u8; HTTP_DATE_LEN],
}

impl HttpDate {
    pub fn new() -> HttpDate {
        let mut d = HttpDate {
            secs: u64::MAX,
            text: [b' '; HTTP_DATE_LEN],
        };
        d.update(SystemTime::now());
        d
    }

    /// Reformats only when the second has changed.
    pub fn update(&mut self, now: SystemTime) {
        let secs = unix_secs(now);
        if secs != self.secs {
            self.secs = secs;
            self.text = imf_fixdate(secs);
        }
    }

    pub fn as_bytes(&self) -> &[u8; HTTP_DATE_LEN] {
        &self.text
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01: Howard Hinnant's
/// `civil_from_days`, for days ≥ 0.
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

fn four(out: &mut [u8], n: u64) {
    two(&mut out[..2], n / 100);
    two(&mut out[2..], n % 100);
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the epoch (years up to 9999).
pub fn imf_fixdate(secs: u64) -> [u8; HTTP_DATE_LEN] {
    const DAYS: &[u8; 21] = b"ThuFriSatSunMonTueWed";
    const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    let mut t = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let wd = (days % 7) as usize * 3;
    t[..3].copy_from_slice(&DAYS[wd..wd + 3]);
    two(&mut t[5..7], d);
    let mi = (m as usize - 1) * 3;
    t[8..11].copy_from_slice(&MONTHS[mi..mi + 3]);
    four(&mut t[12..16], y);
    two(&mut t[17..19], rem / 3600);
    two(&mut t[20..22], rem / 60 % 60);
    two(&mut t[23..25], rem % 60);
    t
}

/// Appends `2026-11-27T17:43:36.123Z`.
pub fn rfc3339_millis(now: SystemTime, out: &mut Vec<u8>) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil(secs / 86_400);
    let rem = secs % 86_400;
    let mut t = *b"1970-01-01T00:00:00.000Z";
    four(&mut t[0..4], y);
    two(&mut t[5..7], m);
    two(&mut t[8..10], day);
    two(&mut t[11..13], rem / 3600);
    two(&mut t[14..16], rem / 60 % 60);
    two(&mut t[17..19], rem % 60);
    let ms = u64::from(d.subsec_millis());
    t[20] = b'0' + (ms / 100) as u8;
    two(&mut t[21..23], ms % 100);
    out.extend_from_slice(&t);
}

/// `now + d`, or far in the future if that does not fit.
#[inline]
pub(crate) fn later(now: std::time::Instant, d: std::time::Duration) -> std::time::Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_rfc_example_and_edges() {
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(1_798_761_599),
            b"Thu, 31 Dec 2026 23:59:59 GMT"
        );
        assert_eq!(
            &imf_fixdate(4_107_542_400),
            b"Mon, 01 Mar 2100 00:00:00 GMT"
        );
    }

    #[test]
    fn test_rfc3339() {
        let mut v = Vec::new();
        rfc3339_millis(UNIX_EPOCH + Duration::from_millis(784_111_777_042), &mut v);
        assert_eq!(v, b"1994-11-06T08:49:37.042Z");
    }

    #[test]
    fn test_every_day_for_a_century_matches_a_naive_calendar() {
        // Oracle: walk the calendar one day at a time.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..36_600u64 {
            assert_eq!(civil(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[m as usize - 1] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn test_cache_reformats_once_per_second() {
        let mut h = HttpDate::new();
        h.update(UNIX_EPOCH + Duration::from_millis(784_111_777_100));
        assert_eq!(h.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        h.update(UNIX_EPOCH + Duration::from_millis(784_111_778_000));
        assert_eq!(h.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
    }
}
