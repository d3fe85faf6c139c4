//! Wire protocol version 2.
//!
//! A frame is a `u32` little-endian payload length followed by the payload
//! ([`frame`]). A payload is a varint message kind followed by the postcard body of that kind
//! ([`message`]). Kinds this version does not know are skipped and counted, so a newer peer can
//! add messages without a new protocol version; a malformed body of a known kind is a protocol
//! error.

pub mod frame;
pub mod message;
pub mod payload;

pub use frame::{encode_frame, FrameDecoder, FrameError};
pub use message::{
    Decoded, Goodbye, GoodbyeReason, Hello, Message, MessageKind, MessageRef, PeerAddr,
    RefuseReason, RequestBody, ResponseBody, WireError, APP_REFUSE_BASE, MAGIC, MAX_USER_AGENT,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use payload::Payload;
