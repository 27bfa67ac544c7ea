#![no_main]
// The request head and the chunked decoder; the invariants are checked in scf_lean::fuzzing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scf_lean::fuzzing::framing(data);
});
