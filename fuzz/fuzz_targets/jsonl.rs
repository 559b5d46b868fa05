//! Fuzz target: the JSON Lines parser over arbitrary text, drained to the end or its fault.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fepd::parse::fuzzing::text(fepd::parse::Format::JsonLines, data);
});
