//! Fuzz target: arbitrary bytes through the decoder's checker and, when it accepts them, its UTF-8 reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fepd::parse::fuzzing::decode(data);
});
