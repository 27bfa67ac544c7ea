//! The shared body of the two experiment binaries: bind 0.0.0.0:$PORT, then answer each
//! request on each connection (framed by the blank line and Content-Length) with
//! `{"event":<body>,"context":{"request_id":"<X-Scf-Request-Id>"}}`, like bench/peers/c/floor.c.
//! Blocking, one connection at a time: enough for the cold-start probe, not for wrk.

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};

fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name) {
            let v = &line[name.len()..];
            let start = v.iter().position(|&b| b != b' ').unwrap_or(v.len());
            Some(&v[start..])
        } else {
            None
        }
    })
}

fn serve(mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; 16384];
    let mut len = 0;
    loop {
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut off = 0;
        while let Some(end) = buf[off..len].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[off..off + end + 4];
            let clen: usize = header(head, b"content-length:")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            let total = end + 4 + clen;
            if off + total > len {
                break;
            }
            let id = header(head, b"x-scf-request-id:").unwrap_or(b"");
            let body = &buf[off + end + 4..off + total];
            let (a, c, z) = (&b"{\"event\":"[..], &b",\"context\":{\"request_id\":\""[..], &b"\"}}"[..]);
            let blen = a.len() + body.len() + c.len() + id.len() + z.len();
            let mut h = [0u8; 128];
            let prefix = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ";
            h[..prefix.len()].copy_from_slice(prefix);
            let mut hl = prefix.len();
            let digits = blen.to_string();
            h[hl..hl + digits.len()].copy_from_slice(digits.as_bytes());
            hl += digits.len();
            h[hl..hl + 4].copy_from_slice(b"\r\n\r\n");
            hl += 4;
            let iov = [
                IoSlice::new(&h[..hl]), IoSlice::new(a), IoSlice::new(body), IoSlice::new(c),
                IoSlice::new(id), IoSlice::new(z),
            ];
            s.write_vectored(&iov)?;
            off += total;
        }
        buf.copy_within(off..len, 0);
        len -= off;
        if len == buf.len() {
            return Ok(());
        }
    }
}

/// Binds and serves forever.
pub fn run() -> i32 {
    let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9000u16);
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let Ok(l) = TcpListener::bind(addr) else { return 1 };
    for s in l.incoming().flatten() {
        let _ = serve(s);
    }
    0
}
