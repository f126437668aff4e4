#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| resource_fuzz::archive_differential(data));
