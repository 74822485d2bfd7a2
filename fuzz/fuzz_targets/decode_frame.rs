//! Any bytes as a client text frame: the decoder answers with a frame or an error naming the
//! problem, and never panics.
#![no_main]

use exaid::protocol::{DecodeLimits, decode_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(err) = decode_with(&text, &DecodeLimits::default()) {
        assert!(!err.message.is_empty());
    }
    let tight = DecodeLimits {
        json_depth_max: 2,
        request_id_bytes_max: 4,
    };
    let _ = decode_with(&text, &tight);
});
