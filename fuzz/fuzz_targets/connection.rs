#![no_main]
// A whole connection over an in-memory stream; the invariants are checked in scf_lean::fuzzing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scf_lean::fuzzing::connection(data);
});
