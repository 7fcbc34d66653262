//! The line console's wire: frames, commands and acknowledgements, without I/O.
//!
//! A console connection carries frames in both directions: a `u32`
//! little-endian length that counts its own four bytes, then one UTF-8 line
//! with no line break. [`FrameDecoder`] turns received bytes into lines and
//! [`encode_frame`] does the reverse. [`parse`] turns a client's line into a
//! [`Command`]; the [`ack`] helpers write the hive's answers byte for byte as
//! upstream Cohesix does (`OK LS path=/proc/lifecycle entries=3`, `END`, ...).
//!
//! This crate owns no socket, timer or session state. It does not decide
//! what a command does, whether the session is authenticated or attached,
//! or which role may do what: the hive does, and answers with these helpers.

pub mod ack;
mod command;
pub mod ctl;
mod frame;

pub use ack::{
    cat_data, cat_ok, err, ok, rate_limited, unsupported, Reason, CAT_DATA_MAX_BYTES, END,
    FRAME_INVALID_LENGTH, PARSE_UNSUPPORTED, PONG,
};
pub use command::{parse, Command, ParseError, Secret};
pub use frame::{encode_frame, FrameDecoder, FrameError, HEADER_LEN};

/// The console's default TCP port.
pub const DEFAULT_PORT: u16 = 31337;
