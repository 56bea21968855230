#![no_main]
// See confab::fuzzing::jwt for what it feeds and what it checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| confab::fuzzing::jwt(data));
