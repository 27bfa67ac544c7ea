//! The memory a CLS event's records take to decode (feature `events`): the compressed data and
//! the decompressed records, each once, measured with a counting allocator; a gzip bomb is
//! refused before anything is inflated.
#![cfg(feature = "events")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use scf_lean::events::{CLS_MAX_DECODED_BYTES, ClsEvent, parse};

/// Counts the bytes allocated now, and the most at any moment since `reset`.
struct Peak;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = NOW.fetch_add(n, Ordering::SeqCst) + n;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        // SAFETY: the caller's contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        grew(n);
        NOW.fetch_sub(l.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Peak = Peak;

/// Peak bytes allocated while `f` runs, above what was allocated before; one measure at a time.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let base = NOW.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = f();
    (r, PEAK.load(Ordering::SeqCst) - base)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// The gzip of `content`.
fn gzip(content: &[u8]) -> Vec<u8> {
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend(miniz_oxide::deflate::compress_to_vec(content, 6));
    gz.extend(crc32(content).to_le_bytes());
    gz.extend((content.len() as u32).to_le_bytes());
    gz
}

/// `{"clslogs":{"data":"<Base64 of gz>"}}`, the gzip's trailer saying `stated` bytes.
fn cls_event(gz: &[u8], stated: u32) -> Vec<u8> {
    let mut gz = gz.to_vec();
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&stated.to_le_bytes());
    let mut event = br#"{"clslogs":{"data":""#.to_vec();
    scf_lean::base64::encode_into(&gz, &mut event);
    event.extend_from_slice(br#""}}"#);
    event
}

#[test]
fn decoding_takes_the_records_and_the_compressed_data_once() {
    // 8 records of 1 MiB each: 8 MiB of records.
    let line = "x".repeat(1 << 20);
    let records: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"timestamp":"{i}","content":"{line}"}}"#))
        .collect();
    let json = format!(
        r#"{{"topic_id":"t","topic_name":"n","records":[{}]}}"#,
        records.join(",")
    );
    let gz = gzip(json.as_bytes());
    let compressed = gz.len();
    let event = cls_event(&gz, json.len() as u32);
    let e: ClsEvent = parse(&event).unwrap();
    let mut buf = Vec::new();
    let (n, peak) = peak_of(|| e.clslogs.decode_into(&mut buf).unwrap().records.len());
    assert_eq!(n, 8);
    eprintln!(
        "CLS: {} bytes of records from {compressed} compressed: peak {peak} bytes while decoding",
        json.len()
    );
    assert!(
        peak <= json.len() + compressed + 64 * 1024,
        "peak {peak} for {} + {compressed}",
        json.len()
    );
}

#[test]
fn a_bomb_is_refused_before_it_is_inflated() {
    // 32 MiB of zeros, twice the limit, in 32 KiB of gzip.
    let gz = gzip(&vec![0u8; 2 * CLS_MAX_DECODED_BYTES]);
    let compressed = gz.len();
    let event = cls_event(&gz, 2 * CLS_MAX_DECODED_BYTES as u32);
    let e: ClsEvent = parse(&event).unwrap();
    let mut buf = Vec::new();
    let (r, peak) = peak_of(|| e.clslogs.decode_into(&mut buf).map(|_| ()));
    let err = r.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.message(),
        "clslogs.data: the data is larger than the limit"
    );
    eprintln!("CLS bomb: {compressed} bytes of gzip stating 32 MiB: refused, peak {peak} bytes");
    assert!(peak <= compressed + 64 * 1024, "peak {peak}");

    // The same stream stating a smaller size: refused once it inflates past that.
    let event = cls_event(&gz, 1 << 20);
    let e: ClsEvent = parse(&event).unwrap();
    let (r, peak) = peak_of(|| e.clslogs.decode_into(&mut buf).map(|_| ()));
    assert_eq!(
        r.unwrap_err().message(),
        "clslogs.data: the gzip data is corrupt (larger than it says)"
    );
    assert!(peak <= (1 << 20) + compressed + 64 * 1024, "peak {peak}");
}
