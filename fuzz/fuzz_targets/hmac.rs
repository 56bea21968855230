#![no_main]
// See confab::fuzzing::hmac for what it feeds and what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| confab::fuzzing::hmac(data));
