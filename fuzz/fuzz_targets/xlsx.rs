//! Fuzz target: arbitrary bytes as an XLSX file, opened with small limits and drained.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fepd::parse::fuzzing::xlsx(data);
});
