//! `#![no_main]`: the C `main` is ours, so std's runtime init does not run. SIGPIPE is
//! ignored by hand (one rt_sigaction), as std would; the stack-overflow handler is gone.
#![no_main]

extern "C" {
    fn signal(sig: i32, handler: usize) -> usize;
}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    // SAFETY: SIGPIPE (13) to SIG_IGN (1), before any other code runs.
    unsafe { signal(13, 1) };
    std_init::run()
}
