//! std's usual entry: `fn main`, reached through std's runtime init (stdio check, SIGPIPE,
//! stack-overflow handler with its sigaltstack and guard page).
fn main() {
    std::process::exit(std_init::run());
}
