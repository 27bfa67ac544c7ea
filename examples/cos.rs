//! A COS object handler: COS calls it when objects are created or removed in a bucket. This
//! one keeps a running total of bytes uploaded (state kept warm across invocations) and says
//! which objects it would process. Build and run with the `events` feature:
//!
//! ```text
//! cargo run --features events --example cos &
//! cargo run --example invoke -- events/cos.json
//! # {"bytesSoFar":1029,"processed":[{"bucket":"testpic","key":"testfile","kind":"other","size":1029}],"skipped":0}
//! ```
//!
//! It implements `Function` itself and calls `scf_lean::events::parse`: the pattern for a
//! function with state, or one that answers with strings borrowed from the event.

use std::process::ExitCode;

use scf_lean::events::{CosEvent, parse};
use scf_lean::{Context, Error, Function, Response};
use serde_json::json;

/// The largest object this function takes on; bigger ones are skipped.
const MAX_OBJECT_BYTES: u64 = 512 << 20;

/// The function's state: it lives as long as the instance.
#[derive(Default)]
struct Uploads {
    bytes_so_far: u64,
}

/// What kind of file a key names, from its extension.
fn kind(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "png" | "gif" | "webp" => "image",
        "mp4" | "mov" => "video",
        "json" | "csv" | "txt" => "data",
        _ => "other",
    }
}

impl Function for Uploads {
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        let e: CosEvent<'a> = parse(event)?;
        let mut processed = Vec::new();
        let mut skipped = 0;
        for r in &e.records {
            let obj = &r.cos.object;
            if !r.event.is_created() || obj.size > MAX_OBJECT_BYTES {
                skipped += 1;
                continue;
            }
            self.bytes_so_far += obj.size;
            eprintln!(
                "[{}] {} {}/{} ({} bytes)",
                ctx.request_id.unwrap_or("-"),
                r.event.name,
                r.cos.bucket.name,
                obj.path(),
                obj.size
            );
            processed.push(json!({
                "bucket": r.cos.bucket.name,
                "key": obj.path(),
                "size": obj.size,
                "kind": kind(obj.path()),
            }));
        }
        out.json(&json!({
            "processed": processed,
            "skipped": skipped,
            "bytesSoFar": self.bytes_so_far,
        }))
    }
}

fn main() -> ExitCode {
    scf_lean::run(Uploads::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn call(f: &mut Uploads, event: &[u8]) -> Result<Value, Error> {
        let mut out = Response::new();
        f.event(event, &Context::default(), &mut out)?;
        Ok(serde_json::from_slice(out.body()).unwrap())
    }

    #[test]
    fn test_the_sample_upload_is_processed_and_counted() {
        let mut f = Uploads::default();
        let v = call(&mut f, include_bytes!("../events/cos.json")).unwrap();
        assert_eq!(
            v["processed"],
            json!([{"bucket": "testpic", "key": "testfile", "size": 1029, "kind": "other"}])
        );
        let v = call(&mut f, include_bytes!("../events/cos.json")).unwrap();
        assert_eq!(v["bytesSoFar"], 2058);
    }

    #[test]
    fn test_removals_are_skipped() {
        let event = String::from_utf8(include_bytes!("../events/cos.json").to_vec())
            .unwrap()
            .replace("cos:ObjectCreated:*", "cos:ObjectRemove:Delete");
        let v = call(&mut Uploads::default(), event.as_bytes()).unwrap();
        assert_eq!(
            (
                v["processed"].as_array().unwrap().len(),
                v["skipped"].as_u64()
            ),
            (0, Some(1))
        );
    }

    #[test]
    fn test_a_bad_size_is_a_400_naming_it() {
        let event = String::from_utf8(include_bytes!("../events/cos.json").to_vec())
            .unwrap()
            .replace("\"size\": 1029", "\"size\": \"x\"");
        let e = call(&mut Uploads::default(), event.as_bytes()).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().contains(
                r#"Records[0].cos.cosObject.size: invalid type: string "x", expected u64"#
            ),
            "{e}"
        );
    }

    #[test]
    fn test_kinds() {
        assert_eq!(kind("a/b.JPG"), "image");
        assert_eq!(kind("noext"), "other");
        assert_eq!(kind("x.csv"), "data");
    }
}
