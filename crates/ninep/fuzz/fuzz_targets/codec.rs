//! Fuzz target: any bytes through the codec.
//!
//! Whatever decodes must re-encode and decode to the same message, and
//! (bodies with optional or skipped parts aside) to the very same bytes.
//! It does not exercise the session engine; `session` does.
#![no_main]

use cohesix_ninep::codec::{decode, encode};
use cohesix_ninep::Body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else { return };

    let mut again = Vec::new();
    encode(&msg, &mut again).expect("a decoded message encodes");
    assert_eq!(decode(&again).as_ref(), Ok(&msg));

    // Tfsync may omit datasync and Unsupported skips its body; every other
    // frame has exactly one encoding.
    if !matches!(msg.body, Body::Tfsync { .. } | Body::Unsupported { .. }) {
        assert_eq!(again, data);
    }
});
