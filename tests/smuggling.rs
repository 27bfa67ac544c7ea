//! Conformance and request smuggling: one line per case, each naming the RFC 9112 (or RFC 9110)
//! section it enforces, sent over loopback to an in-process server.
//!
//! Every case is followed on the same connection by a probe, `GET /next`: a request the server
//! rejects must be answered with its error, `Connection: close`, and EOF — the probe is never
//! answered, so nothing hidden in the rejected bytes can be taken for a request. A request the
//! server serves must be answered, and then the probe too, which shows that its body was
//! framed (and consumed) exactly.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Client, Echo, echo, event_echo, expect_rejected, quiet, start};
use scf_lean::testing::TestServer;

/// One server for every case (default limits: 16 KiB of chunk metadata, 6 MiB of body).
fn server() -> SocketAddr {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| start(quiet(), Echo).0).addr()
}

const PROBE: &[u8] = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n";

/// What a case must get.
enum Want {
    /// The server's own error with this status and message, `Connection: close`, EOF; the
    /// probe unanswered.
    Reject(u16, &'static str),
    /// A 200 echo of this method, target (path and query) and body; then the probe's answer.
    Serve(&'static str, &'static str, &'static [u8]),
    /// As `Serve`, for HEAD: the head of the echo without its body; then the probe's answer.
    Head(&'static str, &'static [u8]),
}
use Want::*;

/// [`echo`] of a target split into path and query.
fn echo_target(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    echo(method, path, query, body)
}

fn assert_probe(c: &mut Client, rule: &str) {
    let r = c.read_response();
    assert_eq!(r.status, 200, "{rule}: probe {r:?}");
    assert_eq!(
        r.body,
        echo("GET", "/next", "", b""),
        "{rule}: probe framed wrong"
    );
}

fn check(rule: &str, raw: &[u8], want: Want) {
    let mut c = Client::connect(server());
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(PROBE);
    c.send(&bytes);
    match want {
        Reject(status, message) => expect_rejected(&mut c, status, message),
        Serve(method, target, body) => {
            let r = c.read_response();
            assert_eq!(r.status, 200, "{rule}: {r:?} {:?}", r.text());
            assert_eq!(
                r.text(),
                String::from_utf8_lossy(&echo_target(method, target, body)),
                "{rule}"
            );
            assert_probe(&mut c, rule);
        }
        Head(path, body) => {
            let r = c.read_head_response();
            assert_eq!(r.status, 200, "{rule}: {r:?}");
            let len = echo("GET", path, "", body).len().to_string();
            assert_eq!(r.header("content-length"), Some(len.as_str()), "{rule}");
            assert_probe(&mut c, rule);
        }
    }
}

/// One test per line: `name, "section", request bytes => what it must get;`.
macro_rules! cases {
    ($($name:ident, $rule:literal, $raw:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            check($rule, AsRef::<[u8]>::as_ref(&$raw), $want);
        }
    )*};
}

/// A POST head with these extra field lines, then `body` raw.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST /p HTTP/1.1\r\nHost: t\r\n{fields}\r\n{body}").into_bytes()
}

/// A chunked POST with this raw chunked body.
fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

/// A chunked POST whose one chunk carries `n` bytes of extension.
fn chunk_ext(n: usize) -> Vec<u8> {
    chunked(&format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(n - 1)))
}

/// A chunked POST whose trailer section holds one `n`-byte field line.
fn trailer(n: usize) -> Vec<u8> {
    chunked(&format!("1\r\nx\r\n0\r\nT: {}\r\n\r\n", "t".repeat(n - 3)))
}

/// 16 KiB: the default `MAX_CHUNK_META_BYTES`.
const META: usize = 16 * 1024;

cases! {
    // --- Content-Length with Transfer-Encoding: a smuggling attempt, rejected and closed. ---
    cl_and_te, "RFC 9112 §6.1", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    te_and_cl, "RFC 9112 §6.1", post("Transfer-Encoding: chunked\r\nContent-Length: 6\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    cl_and_te_lower_case, "RFC 9112 §6.1", post("content-length: 6\r\ntransfer-encoding: chunked\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    cl_and_te_upper_case, "RFC 9112 §6.1", post("CONTENT-LENGTH: 6\r\nTRANSFER-ENCODING: CHUNKED\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    cl_and_te_tabs, "RFC 9112 §6.1", post("Content-Length:\t6\t\r\nTransfer-Encoding:\tchunked\t\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    cl_zero_and_te, "RFC 9112 §6.1", post("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") => Reject(400, "both Content-Length and Transfer-Encoding");
    cl_and_te_unknown, "RFC 9112 §6.1", post("Content-Length: 3\r\nTransfer-Encoding: gzip\r\n", "abc") => Reject(501, "only the chunked transfer coding is implemented");

    // --- Transfer-Encoding obfuscations. ---
    te_chunked_identity, "RFC 9112 §6.3 (chunked not final)", post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n") => Reject(400, "chunked is not the final transfer coding");
    te_chunked_then_identity_field, "RFC 9112 §6.3 (chunked not final)", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n") => Reject(400, "chunked is not the final transfer coding");
    te_identity_chunked, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_gzip_chunked_fields, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_xchunked, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_chunked_suffix, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: chunkedx\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_quoted, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_duplicate_fields, "RFC 9112 §6.1 (chunked at most once)", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") => Reject(400, "chunked applied twice");
    te_chunked_twice_in_list, "RFC 9112 §6.1 (chunked at most once)", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n") => Reject(400, "chunked applied twice");
    te_empty, "RFC 9112 §6.3 (length cannot be determined)", post("Transfer-Encoding: \r\n", "0\r\n\r\n") => Reject(400, "empty Transfer-Encoding");
    te_gzip, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: gzip\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_gzip_chunked_list, "RFC 9112 §6.1 (unknown coding: 501)", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n") => Reject(501, "only the chunked transfer coding is implemented");
    te_chunked_gzip_list, "RFC 9112 §6.3 (chunked not final)", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n") => Reject(400, "chunked is not the final transfer coding");
    te_spaces_around, "RFC 9110 §5.5 (OWS around a value)", post("Transfer-Encoding:    chunked   \r\n", "3\r\nabc\r\n0\r\n\r\n") => Serve("POST", "/p", b"abc");
    te_tabs_around, "RFC 9110 §5.5 (OWS around a value)", post("Transfer-Encoding:\tchunked\t\r\n", "3\r\nabc\r\n0\r\n\r\n") => Serve("POST", "/p", b"abc");
    te_empty_list_elements, "RFC 9110 §5.6.1 (empty list elements)", post("Transfer-Encoding: , chunked ,\r\n", "3\r\nabc\r\n0\r\n\r\n") => Serve("POST", "/p", b"abc");
    te_mixed_case_value, "RFC 9112 §7 (codings are case-insensitive)", post("Transfer-Encoding: ChUnKeD\r\n", "3\r\nabc\r\n0\r\n\r\n") => Serve("POST", "/p", b"abc");
    te_vertical_tab_before, "RFC 9110 §5.5 (no CTL in a value)", post("Transfer-Encoding: \x0bchunked\r\n", "0\r\n\r\n") => Reject(400, "invalid header value");
    te_vertical_tab_after, "RFC 9110 §5.5 (no CTL in a value)", post("Transfer-Encoding: chunked\x0b\r\n", "0\r\n\r\n") => Reject(400, "invalid header value");
    te_form_feed, "RFC 9110 §5.5 (no CTL in a value)", post("Transfer-Encoding:\x0cchunked\r\n", "0\r\n\r\n") => Reject(400, "invalid header value");
    te_space_before_colon, "RFC 9112 §5.1 (no whitespace before the colon)", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n") => Reject(400, "invalid header name");
    te_tab_before_colon, "RFC 9112 §5.1 (no whitespace before the colon)", post("Transfer-Encoding\t: chunked\r\n", "0\r\n\r\n") => Reject(400, "invalid header name");
    te_obs_fold, "RFC 9112 §5.2 (obs-fold rejected)", post("Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n") => Reject(400, "invalid header name");
    te_on_http10, "RFC 9112 §6.1 (Transfer-Encoding on HTTP/1.0)", b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => Reject(400, "Transfer-Encoding on HTTP/1.0");
    te_and_cl_on_http10, "RFC 9112 §6.1 (Transfer-Encoding on HTTP/1.0)", b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" => Reject(400, "both Content-Length and Transfer-Encoding");

    // --- Content-Length. ---
    cl_duplicate_same, "RFC 9110 §8.6 (identical values)", post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc") => Serve("POST", "/p", b"abc");
    cl_duplicate_differ, "RFC 9112 §6.3 (invalid Content-Length)", post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd") => Reject(400, "conflicting Content-Length");
    cl_list, "RFC 9112 §6.3 (invalid Content-Length)", post("Content-Length: 3, 3\r\n", "abc") => Reject(400, "invalid Content-Length");
    cl_list_no_space, "RFC 9112 §6.3 (invalid Content-Length)", post("Content-Length: 5,5\r\n", "abcde") => Reject(400, "invalid Content-Length");
    cl_list_differ, "RFC 9112 §6.3 (invalid Content-Length)", post("Content-Length: 3, 4\r\n", "abcd") => Reject(400, "invalid Content-Length");
    cl_plus, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: +3\r\n", "abc") => Reject(400, "invalid Content-Length");
    cl_minus, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: -1\r\n", "") => Reject(400, "invalid Content-Length");
    cl_space_inside, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: 1 2\r\n", "abcdefghijkl") => Reject(400, "invalid Content-Length");
    cl_hex, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: 0x3\r\n", "abc") => Reject(400, "invalid Content-Length");
    cl_decimal_point, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: 3.0\r\n", "abc") => Reject(400, "invalid Content-Length");
    cl_empty, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: \r\n", "") => Reject(400, "invalid Content-Length");
    cl_overflow, "RFC 9110 §8.6 (overflow is invalid)", post("Content-Length: 18446744073709551616\r\n", "") => Reject(400, "Content-Length overflows");
    cl_overflow_long, "RFC 9110 §8.6 (overflow is invalid)", post("Content-Length: 99999999999999999999999999999999\r\n", "") => Reject(400, "Content-Length overflows");
    cl_past_limit, "RFC 9110 §15.5.14 (413)", post("Content-Length: 7340032\r\n", "") => Reject(413, "the request body is larger than SCF_LEAN_MAX_BODY_BYTES");
    cl_leading_zeros, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: 003\r\n", "abc") => Serve("POST", "/p", b"abc");
    cl_tabs_around, "RFC 9110 §5.5 (OWS around a value)", post("Content-Length:\t3\t\r\n", "abc") => Serve("POST", "/p", b"abc");
    cl_space_before_colon, "RFC 9112 §5.1 (no whitespace before the colon)", post("Content-Length : 3\r\n", "abc") => Reject(400, "invalid header name");
    cl_letters, "RFC 9110 §8.6 (1*DIGIT)", post("Content-Length: abc\r\n", "abc") => Reject(400, "invalid Content-Length");
    cl_vertical_tab, "RFC 9110 §5.5 (no CTL in a value)", post("Content-Length: \x0b3\r\n", "abc") => Reject(400, "invalid header value");

    // --- Chunk sizes. ---
    chunk_size_overflow, "RFC 9112 §7.1 (chunk-size overflow)", chunked("10000000000000000\r\nx\r\n0\r\n\r\n") => Reject(400, "chunk size too long");
    chunk_size_u64_max, "RFC 9112 §7.1 (chunk-size past the body limit)", chunked("ffffffffffffffff\r\nx\r\n0\r\n\r\n") => Reject(413, "the request body is larger than SCF_LEAN_MAX_BODY_BYTES");
    chunk_size_leading_zeros_overflow, "RFC 9112 §7.1 (chunk-size overflow)", chunked("00000000000000001\r\nx\r\n0\r\n\r\n") => Reject(400, "chunk size too long");
    chunk_size_hex_junk, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("5g\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_0x, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("0x5\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_negative, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("-5\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_plus, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("+5\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_leading_space, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked(" 5\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_empty, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_letter, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("x\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_trailing_letter, "RFC 9112 §7.1 (chunk-size = 1*HEXDIG)", chunked("5x\r\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_size_upper_hex, "RFC 9112 §7.1 (HEXDIG is either case)", chunked("A\r\n0123456789\r\n0\r\n\r\n") => Serve("POST", "/p", b"0123456789");
    chunk_data_longer_than_size, "RFC 9112 §7.1 (CRLF after chunk-data)", chunked("3\r\nabcd\r\n0\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_data_shorter_than_size, "RFC 9112 §7.1 (CRLF after chunk-data)", chunked("5\r\nabc\r\n0\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");

    // --- Line ends inside the chunked framing: CRLF only. ---
    chunk_lf_after_size, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\nhello\r\n0\r\n\r\n") => Reject(400, "invalid chunk size");
    chunk_lf_after_data, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\r\nhello\n0\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_lf_after_last_chunk, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\r\nhello\r\n0\n\r\n") => Reject(400, "invalid chunk size");
    chunk_lf_final_line, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\r\nhello\r\n0\r\n\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_lf_final_line_of_empty_body, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("0\r\n\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_lf_everywhere, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\nhello\n0\n\n") => Reject(400, "invalid chunk size");
    chunk_cr_after_size, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\rhello\r\n0\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_cr_after_data, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\r\nhello\r0\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_cr_final_line, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\r\nhello\r\n0\r\n\r") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_cr_everywhere, "RFC 9112 §7.1 (CRLF in chunk framing)", chunked("5\rhello\r0\r\r") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_lf_in_trailer, "RFC 9112 §7.1.2 (CRLF after a trailer line)", chunked("0\r\nT: v\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");
    chunk_cr_in_trailer, "RFC 9112 §7.1.2 (CRLF after a trailer line)", chunked("0\r\nT: v\rX: w\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");

    // --- Chunk extensions and trailers: accepted, skipped, capped. ---
    chunk_extensions, "RFC 9112 §7.1.1 (extensions ignored)", chunked("3;a=b;c=\"d e\" ; f\r\nabc\r\n0;last\r\n\r\n") => Serve("POST", "/p", b"abc");
    chunk_ext_at_cap, "RFC 9112 §7.1.1 (extensions capped at 16 KiB)", chunk_ext(META) => Serve("POST", "/p", b"x");
    chunk_ext_over_cap, "RFC 9112 §7.1.1 (extensions capped at 16 KiB)", chunk_ext(META + 1) => Reject(400, "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES");
    chunk_ext_huge, "RFC 9112 §7.1.1 (extensions capped at 16 KiB)", chunk_ext(64 * 1024) => Reject(400, "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES");
    chunk_ext_nul, "RFC 9112 §7.1.1 (no CTL in an extension)", chunked("3;a\x00b\r\nabc\r\n0\r\n\r\n") => Reject(400, "invalid chunk extension");
    chunk_ext_bare_lf, "RFC 9112 §7.1.1 (no CTL in an extension)", chunked("3;a\nb\r\nabc\r\n0\r\n\r\n") => Reject(400, "invalid chunk extension");
    chunk_trailers, "RFC 9112 §7.1.2 (trailers skipped)", chunked("3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n") => Serve("POST", "/p", b"abc");
    chunk_trailer_at_cap, "RFC 9112 §7.1.2 (trailers capped at 16 KiB)", trailer(META) => Serve("POST", "/p", b"x");
    chunk_trailer_over_cap, "RFC 9112 §7.1.2 (trailers capped at 16 KiB)", trailer(META + 1) => Reject(400, "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES");
    chunk_trailer_no_colon, "RFC 9112 §7.1.2 (a trailer is a field line)", chunked("0\r\nT\r\n\r\n") => Reject(400, "invalid trailer field");
    chunk_trailer_space_before_colon, "RFC 9112 §5.1 (no whitespace before the colon)", chunked("0\r\nT : v\r\n\r\n") => Reject(400, "invalid trailer field");
    chunk_trailer_obs_fold, "RFC 9112 §5.2 (obs-fold rejected)", chunked("0\r\nT: v\r\n w\r\n\r\n") => Reject(400, "invalid trailer field");
    chunk_bws_after_size_at_cap, "RFC 9112 §7.1 (BWS counts as chunk metadata)", chunked(&format!("1{}\r\nx\r\n0\r\n\r\n", " ".repeat(META))) => Serve("POST", "/p", b"x");
    chunk_bws_after_size_over_cap, "RFC 9112 §7.1 (BWS counts as chunk metadata)", chunked(&format!("1{}\r\nx\r\n0\r\n\r\n", " ".repeat(META + 1))) => Reject(400, "chunk extensions or trailers are larger than SCF_LEAN_MAX_CHUNK_META_BYTES");
    chunk_trailer_nul, "RFC 9112 §7.1.2 (no CTL in a trailer)", chunked("0\r\nT: a\x00b\r\n\r\n") => Reject(400, "invalid chunked framing: lines must end in CRLF");

    // --- NUL and control bytes in the head. ---
    nul_in_name, "RFC 9110 §5.1 (a name is a token)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A\x00: 1\r\n\r\n" => Reject(400, "invalid header name");
    ctl_in_name, "RFC 9110 §5.1 (a name is a token)", b"GET / HTTP/1.1\r\nHost: t\r\nX-\x01A: 1\r\n\r\n" => Reject(400, "invalid header name");
    del_in_name, "RFC 9110 §5.1 (a name is a token)", b"GET / HTTP/1.1\r\nHost: t\r\nX-\x7fA: 1\r\n\r\n" => Reject(400, "invalid header name");
    nul_in_value, "RFC 9110 §5.5 (no NUL in a value)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n" => Reject(400, "invalid header value");
    ctl_in_value, "RFC 9110 §5.5 (no CTL in a value)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n" => Reject(400, "invalid header value");
    del_in_value, "RFC 9110 §5.5 (no CTL in a value)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n" => Reject(400, "invalid header value");
    bare_cr_in_value, "RFC 9112 §2.2 (bare CR is invalid)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n" => Reject(400, "invalid header value");
    nul_in_target, "RFC 9112 §3.2 (target grammar)", b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request line");
    nul_in_method, "RFC 9112 §3.1 (a method is a token)", b"G\x00T / HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request line");
    space_in_name, "RFC 9110 §5.1 (a name is a token)", b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n" => Reject(400, "invalid header name");
    no_colon, "RFC 9112 §5 (field-line = field-name \":\" OWS field-value OWS)", b"GET / HTTP/1.1\r\nHost: t\r\nno-colon\r\n\r\n" => Reject(400, "invalid header name");
    bare_cr_after_request_line, "RFC 9112 §2.2 (bare CR is invalid)", b"GET / HTTP/1.1\rHost: t\r\n\r\n" => Reject(400, "invalid line ending");
    obs_text_in_value, "RFC 9110 §5.5 (obs-text is allowed)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\n\r\n" => Serve("GET", "/", b"");
    space_before_colon, "RFC 9112 §5.1 (no whitespace before the colon)", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n" => Reject(400, "invalid header name");
    space_before_first_field, "RFC 9112 §2.2 (whitespace after the start line)", b"GET / HTTP/1.1\r\n Host: t\r\n\r\n" => Reject(400, "invalid header name");
    obs_fold, "RFC 9112 §5.2 (obs-fold rejected)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n" => Reject(400, "invalid header name");
    obs_fold_tab, "RFC 9112 §5.2 (obs-fold rejected)", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n" => Reject(400, "invalid header name");
    missing_host_among_fields, "RFC 9112 §3.2 (Host required on HTTP/1.1)", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n" => Reject(400, "missing Host header");
    host_with_space, "RFC 9110 §7.2 (Host = uri-host [ \":\" port ])", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => Reject(400, "invalid Host header");
    host_with_userinfo, "RFC 9110 §7.2 (no userinfo in Host)", b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n" => Reject(400, "invalid Host header");
    host_list, "RFC 9112 §3.2 (exactly one Host)", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n" => Reject(400, "invalid Host header");
    host_ip_literal_and_port, "RFC 9110 §7.2 (IP-literal and port)", b"GET /h HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n" => Serve("GET", "/h", b"");
    host_empty, "RFC 9112 §3.2 (an empty Host when the target has no authority)", b"GET /h HTTP/1.1\r\nHost:\r\n\r\n" => Serve("GET", "/h", b"");
    missing_host, "RFC 9112 §3.2 (Host required on HTTP/1.1)", b"GET / HTTP/1.1\r\n\r\n" => Reject(400, "missing Host header");
    two_hosts, "RFC 9112 §3.2 (exactly one Host)", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => Reject(400, "more than one Host header");

    // --- The platform's context headers: SCF sets each once, so a second is a client's. ---
    scf_request_id_forged_first, "SCF context (one X-Scf-Request-Id)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Request-Id: forged\r\nX-Scf-Request-Id: real\r\n\r\n" => Reject(400, "more than one X-Scf-Request-Id header");
    scf_request_id_forged_last, "SCF context (one X-Scf-Request-Id)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Request-Id: real\r\nx-scf-request-id: forged\r\n\r\n" => Reject(400, "more than one X-Scf-Request-Id header");
    scf_secret_key_twice, "SCF context (one X-Scf-Secret-Key)", b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-SCF-SECRET-KEY: callers-key\r\nX-Scf-Secret-Key: functions-key\r\nContent-Length: 2\r\n\r\n{}" => Reject(400, "more than one X-Scf-Secret-Key header");
    scf_secret_id_twice_one_empty, "SCF context (one X-Scf-Secret-Id)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Secret-Id:\r\nX-Scf-Secret-Id: AKIDx\r\n\r\n" => Reject(400, "more than one X-Scf-Secret-Id header");
    scf_session_token_twice, "SCF context (one X-Scf-Session-Token)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Session-Token: a\r\nX-Scf-Session-Token: a\r\n\r\n" => Reject(400, "more than one X-Scf-Session-Token header");
    scf_timeout_twice_malformed, "SCF context (one X-Scf-Timeout)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Timeout: x\r\nX-Scf-Timeout: 3000\r\n\r\n" => Reject(400, "more than one X-Scf-Timeout header");
    scf_trigger_src_twice, "SCF context (one X-Scf-Trigger-Src)", b"GET / HTTP/1.1\r\nHost: t\r\nX-Scf-Trigger-Src: timer\r\nX-Scf-Trigger-Src: timer\r\n\r\n" => Reject(400, "more than one X-Scf-Trigger-Src header");
    scf_other_field_twice, "SCF context (a field that is not context is not counted)", b"GET /o HTTP/1.1\r\nHost: t\r\nX-Scf-Other: a\r\nX-Scf-Other: b\r\n\r\n" => Serve("GET", "/o", b"");

    // --- Request line and target forms. ---
    request_line_method_only, "RFC 9112 §3 (method SP request-target SP HTTP-version)", b"GET\r\n\r\n" => Reject(400, "invalid request line");
    method_not_a_token, "RFC 9110 §9.1 (a method is a token)", b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request line");
    version_not_http, "RFC 9112 §2.3 (HTTP-name is \"HTTP\")", b"GET / HTTX/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid HTTP version");
    tls_client_hello, "RFC 9112 §3 (TLS sent to the plain-text port)", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n" => Reject(400, "invalid request line");
    absolute_form, "RFC 9112 §3.2.2 (absolute-form)", b"GET http://t/a/b?q=1 HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("GET", "/a/b?q=1", b"");
    absolute_form_https_no_path, "RFC 9112 §3.2.2 (absolute-form)", b"GET https://t HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("GET", "/", b"");
    absolute_form_query_before_path, "RFC 3986 §3.2 (the authority ends at ?)", b"POST http://t?/event-invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" => Serve("POST", "/?/event-invoke", b"{}");
    absolute_form_query_with_slash, "RFC 3986 §3.2 (the authority ends at ?)", b"GET http://t?a/b HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("GET", "/?a/b", b"");
    fragment_in_target, "RFC 9112 §3.2 (no fragment in a request target)", b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request target");
    connect_authority_form, "RFC 9110 §9.3.6, §15.6.2 (CONNECT not supported: 501)", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" => Reject(501, "the CONNECT method is not supported");
    asterisk_form_options, "RFC 9112 §3.2.4 (asterisk-form)", b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("OPTIONS", "*", b"");
    asterisk_form_get, "RFC 9112 §3.2.4 (asterisk-form only for OPTIONS)", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request target");
    authority_form_get, "RFC 9112 §3.2.3 (authority-form only for CONNECT)", b"GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request target");
    relative_target, "RFC 9112 §3.2 (target grammar)", b"GET a/b HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request target");
    target_without_slash, "RFC 9112 §3.2 (target grammar)", b"GET nope HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request target");
    double_space_in_line, "RFC 9112 §3 (single SP in the request line)", b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid request line");
    version_lower_case, "RFC 9112 §2.3 (HTTP-name is case-sensitive)", b"GET / http/1.1\r\nHost: t\r\n\r\n" => Reject(400, "invalid HTTP version");
    version_2, "RFC 9110 §15.6.6 (505)", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n" => Reject(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    version_1_2, "RFC 9110 §15.6.6 (505)", b"GET / HTTP/1.2\r\nHost: t\r\n\r\n" => Reject(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    version_0_9, "RFC 9110 §15.6.6 (505)", b"GET / HTTP/0.9\r\nHost: t\r\n\r\n" => Reject(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    lf_only_head, "RFC 9112 §2.2 (LF alone ends a line in the head)", b"GET /lf HTTP/1.1\nHost: t\n\n" => Serve("GET", "/lf", b"");
    leading_empty_lines, "RFC 9112 §2.2 (empty lines before the request line)", b"\r\n\r\nGET /e HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("GET", "/e", b"");
    expect_unknown, "RFC 9110 §10.1.1 (417)", post("Expect: 200-ok\r\nContent-Length: 1\r\n", "x") => Reject(417, "only Expect: 100-continue is supported");

    // --- Bodies on GET and HEAD: served, and consumed so the next request is framed right. ---
    get_with_body, "RFC 9110 §9.3.1 / RFC 9112 §6.3", b"GET /g HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" => Serve("GET", "/g", b"abc");
    get_with_chunked_body, "RFC 9110 §9.3.1 / RFC 9112 §6.3", b"GET /g HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" => Serve("GET", "/g", b"abc");
    get_with_smuggled_body, "RFC 9112 §6.3 (the body is not a request)", b"GET /g HTTP/1.1\r\nHost: t\r\nContent-Length: 28\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n" => Serve("GET", "/g", b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    head_with_body, "RFC 9110 §9.3.2 / RFC 9112 §6.3", b"HEAD /h HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" => Head("/h", b"abc");
    head_with_chunked_body, "RFC 9110 §9.3.2 / RFC 9112 §6.3", b"HEAD /h HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" => Head("/h", b"abc");
    delete_with_body, "RFC 9110 §9.3.5 / RFC 9112 §6.3", b"DELETE /d HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nxy" => Serve("DELETE", "/d", b"xy");
}

/// Requests that must be answered exactly once, whatever their pieces.
fn whole_requests() -> Vec<(Vec<u8>, Vec<u8>)> {
    let event = b"POST /event-invoke HTTP/1.1\r\nHost: t\r\nX-Scf-Request-Id: r-1\r\nX-Scf-Memory: 128\r\nX-Scf-Timeout: 3000\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
    let want_event = event_echo("r-1", b"{\"a\":1}");
    vec![
        (event.to_vec(), want_event),
        (
            chunked("3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"),
            echo("POST", "/p", "", b"abcde"),
        ),
        (
            b"GET /g HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
            echo("GET", "/g", "", b"hi"),
        ),
    ]
}

/// RFC 9112 §2 / §6.3: a request split at any byte is answered only once it is complete — the
/// server waits, and never answers early or twice.
#[test]
fn request_split_at_every_byte_waits_for_the_whole() {
    let mut c = Client::connect(server());
    for (raw, want) in whole_requests() {
        for i in 1..raw.len() {
            c.send(&raw[..i]);
            c.expect_nothing_for(Duration::from_millis(3));
            c.send(&raw[i..]);
            let r = c.read_response();
            assert_eq!(r.status, 200, "cut at {i}: {r:?}");
            assert_eq!(r.body, want, "cut at {i}");
        }
    }
    // And byte by byte.
    for (raw, want) in whole_requests() {
        for b in &raw {
            c.send([*b]);
        }
        assert_eq!(c.read_response().body, want);
    }
}
