//! Your function. SCF sends it events and HTTP requests; it answers each one. This one is a
//! small shop, to read top to bottom and then replace: a typed event, two HTTP routes, errors
//! with a status, and state kept between invocations. Its tests are in `tests/function.rs`.

use scf_lean::{Context, Error, Function, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The function and its state. An instance stays warm between invocations: what lives here (a
/// count, a cache, a client) is there on the next call, until SCF stops the instance.
#[derive(Default)]
pub struct Shop {
    items: Vec<Item>,
    greeted: u64,
}

/// `POST /items` takes this JSON and answers with it.
#[derive(Deserialize, Serialize)]
struct Item {
    name: String,
    qty: u32,
}

/// What it reads of a timer trigger's event (`events/timer.json`); other fields are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Timer {
    trigger_name: String,
}

impl Function for Shop {
    /// Events: `POST /event-invoke`, the trigger's JSON as the body (here a timer's).
    fn event<'a>(
        &mut self,
        event: &'a [u8],
        ctx: &Context<'a>,
        out: &mut Response<'a>,
    ) -> Result<(), Error> {
        // `?` answers with the error: an event that is not a `Timer` gets a 400 naming the field.
        let timer: Timer = scf_lean::from_json(event)?;
        let (trigger, items) = (timer.trigger_name, self.items.len());
        scf_lean::info!("{trigger} fired; stock: {items}"); // logged with the request id
        out.json(&json!({ "trigger": trigger, "items": items, "request": ctx.request_id }))
    }

    /// HTTP requests (a web function): every method and path, as API Gateway passes them on.
    fn http<'a>(&mut self, req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
        // The path's segments, percent-decoded: /hello/J%C3%BCrgen is "hello", "Jürgen".
        let (method, mut path) = (req.method(), req.segments());
        match (method, path.next().as_deref(), path.next(), path.next()) {
            ("GET", Some("hello"), Some(name), None) => {
                self.greeted += 1;
                out.json(&json!({ "hello": name, "greeted": self.greeted }))
            }
            ("POST", Some("items"), None, None) => {
                let item: Item = req.json()?; // a 400 when the body does not fit `Item`
                if self.items.iter().any(|i| i.name == item.name) {
                    // Any status from 400 to 599, with the JSON body {"errorCode","errorMessage"}.
                    let message = format!("{} is already in stock", item.name);
                    return Err(Error::new(message).with_status(409));
                }
                out.set_status(201); // Created
                out.json(&item)?;
                self.items.push(item);
                Ok(())
            }
            _ => Err(Error::not_found("no such route")), // a JSON 404 (Error::bad_request: a 400)
        }
    }
}

/// The function as the server starts it, once per instance; `tests/` build it the same way.
pub fn function() -> Shop {
    Shop::default()
}

// Serves `function()` on port 9000, from before std's own set-up: the fastest cold start.
scf_lean::main!(function());
