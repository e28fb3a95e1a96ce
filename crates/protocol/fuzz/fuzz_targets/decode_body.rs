//! Fuzzes `WrapperMsg::decode_body` and `ServerMsg::decode_body` with
//! arbitrary bytes: never a panic, no allocation driven by forged counts
//! (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch those), and
//! whatever decodes re-encodes to a body that decodes to the same message.
//! (Server strings decode lossily, so a re-encoded body may be longer.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Message, ServerMsg, WrapperMsg};

fn check<M: Message + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(msg) = M::decode_body(data) {
        let mut body = Vec::new();
        msg.encode_body(&mut body);
        let again = M::decode_body(&body).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    check::<WrapperMsg>(data);
    check::<ServerMsg>(data);
});
