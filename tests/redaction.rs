//! The credentials SCF passes (`X-Scf-Secret-Id`, `X-Scf-Secret-Key`, `X-Scf-Session-Token`),
//! and those a caller's own travel in (`Authorization`, `Cookie`, `X-Api-Key`…), never show in
//! a `Debug` print, whatever the case of their names: a function author's
//! `eprintln!("{req:?}")` must not put them in the logs.

use scf_lean::testing::TestServer;
use scf_lean::{Context, Error, Function, Request, Response};

const SECRETS: [&str; 3] = ["id-VALUE-1", "key-VALUE-2", "token-VALUE-3"];

/// Header sets with the three credential headers, each spelled another way.
fn spellings() -> Vec<[(&'static str, &'static [u8]); 4]> {
    vec![
        [
            ("Host", b"h"),
            ("X-Scf-Secret-Id", b"id-VALUE-1"),
            ("X-Scf-Secret-Key", b"key-VALUE-2"),
            ("X-Scf-Session-Token", b"token-VALUE-3"),
        ],
        [
            ("host", b"h"),
            ("x-scf-secret-id", b"id-VALUE-1"),
            ("X-SCF-SECRET-KEY", b"key-VALUE-2"),
            ("x-Scf-sEssIon-tOkEn", b"token-VALUE-3"),
        ],
    ]
}

fn assert_clean(what: &str, printed: &str) {
    for s in SECRETS {
        assert!(!printed.contains(s), "{what} prints {s}: {printed}");
    }
    assert!(printed.contains("<redacted>"), "{what}: {printed}");
}

#[test]
fn debug_of_request_headers_context_and_response_redacts_the_credentials() {
    for headers in spellings() {
        let req = Request::new("POST", "/p?q=1", &headers, b"body");
        let ctx = *req.context();
        assert_eq!(ctx.credentials.secret_key(), Some("key-VALUE-2"));
        for (what, printed) in [
            ("Request", format!("{req:?}")),
            ("Request (pretty)", format!("{req:#?}")),
            ("Headers", format!("{:?}", req.headers())),
            ("Context", format!("{ctx:?}")),
            ("Credentials", format!("{:?}", ctx.credentials)),
        ] {
            assert_clean(what, &printed);
        }
        // The rest is there to be read.
        assert!(format!("{req:?}").contains("/p?q=1"));
        assert!(format!("{:?}", req.headers()).contains("\"h\""));

        // A response that carries a credential header (a function copying it) shows no value.
        let mut out = Response::new();
        for (n, v) in &headers[1..] {
            out.header(n, std::str::from_utf8(v).unwrap());
        }
        assert_clean("Response", &format!("{out:?}"));
    }
}

#[test]
fn debug_hides_the_callers_own_credentials_too() {
    let headers: [(&str, &[u8]); 6] = [
        ("Host", b"h"),
        ("authorization", b"Bearer tok-VALUE-4"),
        ("Proxy-Authorization", b"Basic cHJveHk6VALUE-5"),
        ("COOKIE", b"session=VALUE-6"),
        ("X-Api-Key", b"apikey-VALUE-7"),
        ("X-Amz-Security-Token", b"amz-VALUE-8"),
    ];
    let req = Request::new("GET", "/p", &headers, b"");
    let mut out = Response::new();
    out.header("Set-Cookie", "session=VALUE-9; HttpOnly");
    for (what, printed) in [
        ("Request", format!("{req:?}")),
        ("Headers", format!("{:?}", req.headers())),
        ("Response", format!("{out:?}")),
    ] {
        assert!(!printed.contains("VALUE-"), "{what}: {printed}");
        assert!(printed.contains("<redacted>"), "{what}: {printed}");
    }
    // The function itself reads them as they are.
    assert_eq!(req.header("Authorization"), Some("Bearer tok-VALUE-4"));
}

/// Prints what it gets, as a careless function would, and answers with that print.
struct Printer;

impl Function for Printer {
    fn event<'a>(
        &mut self,
        _: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        out.body_mut()
            .extend_from_slice(format!("{ctx:?}").as_bytes());
        Ok(())
    }

    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        out.body_mut()
            .extend_from_slice(format!("{req:#?}").as_bytes());
        Ok(())
    }
}

#[test]
fn debug_prints_of_what_the_server_passes_redact_the_credentials() {
    let server = TestServer::start(Printer);
    let r = server.event("{}");
    r.assert_no_secrets();
    assert!(r.text().contains("<redacted>"), "{}", r.text());
    for headers in spellings() {
        let headers: Vec<(&str, &str)> = headers[1..]
            .iter()
            .map(|(n, v)| (*n, std::str::from_utf8(v).unwrap()))
            .collect();
        let r = server.request("GET", "/x", &headers, b"");
        assert_clean("the request the server passed", &r.text());
        assert_clean("TestResponse", &format!("{r:?}"));
    }
}
