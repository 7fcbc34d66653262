//! How a failed fs request is answered: HTTP status, the console-shaped
//! error text, and the retry hint.
//!
//! | failure | HTTP | reason |
//! |---|---|---|
//! | invalid input, result over `max_bytes` | 400 | policy |
//! | hive refusal (not found, permission, invalid, quota, closed) | 200 | by class |
//! | hive busy (EBUSY), gateway queue full, no free fid | 429 | busy |
//! | no live session to the hive, session lost mid-request | 503 | cut |
//! | request deadline passed | 504 | busy |
//! | request body over the bound / too slow | 413 / 408 | policy |
//!
//! Refusal classes map to reasons as the hive counts them in
//! `/proc/pressure`: busy → busy; quota, too-big, rate-limited → quota;
//! closed → cut; everything else → policy.

use crate::broker::CheckoutError;
use crate::ops::OpError;
use crate::validate::Invalid;
use axum::http::StatusCode;
use cohesix_client::{Error as ClientError, ErrorClass};

/// Why an fs request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// The request itself is wrong (400).
    Invalid(Invalid),
    /// The hive refused the operation.
    Refused(ErrorClass),
    /// The gateway cannot take more work now (429).
    Busy { detail: &'static str },
    /// No live session to the hive (503).
    Unavailable { detail: &'static str },
    /// The request deadline passed (504).
    Timeout,
    /// The request body is larger than the gateway accepts (413).
    BodyTooLarge { limit: usize },
    /// The client did not send its body in time (408).
    BodyTimeout,
}

impl FsError {
    pub fn status(&self) -> StatusCode {
        match self {
            FsError::Invalid(_) => StatusCode::BAD_REQUEST,
            FsError::Refused(ErrorClass::Busy) | FsError::Busy { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            FsError::Refused(_) => StatusCode::OK,
            FsError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            FsError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            FsError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            FsError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// `busy`, `quota`, `cut` or `policy`.
    pub fn reason(&self) -> &'static str {
        match self {
            FsError::Invalid(_) | FsError::BodyTooLarge { .. } | FsError::BodyTimeout => "policy",
            FsError::Refused(class) => reason_of(*class),
            FsError::Busy { .. } | FsError::Timeout => "busy",
            FsError::Unavailable { .. } => "cut",
        }
    }

    pub fn detail(&self) -> &'static str {
        match self {
            FsError::Invalid(i) => i.detail,
            FsError::Refused(class) => class.name(),
            FsError::Busy { detail } | FsError::Unavailable { detail } => detail,
            FsError::Timeout => "timeout",
            FsError::BodyTooLarge { .. } => "body-too-large",
            FsError::BodyTimeout => "body-timeout",
        }
    }

    /// Short human text for the `error=` field.
    pub fn message(&self) -> String {
        match self {
            FsError::Invalid(i) => i.why.clone(),
            FsError::Refused(class) => format!("hive refused: {}", class.name().replace('-', " ")),
            FsError::Busy { detail } => format!("back-pressure: {}", detail.replace('-', " ")),
            FsError::Unavailable { .. } => String::from("hive unreachable"),
            FsError::Timeout => String::from("request timed out"),
            FsError::BodyTooLarge { limit } => format!("body larger than {limit} bytes"),
            FsError::BodyTimeout => String::from("body not received in time"),
        }
    }

    /// `ERR <VERB> reason=.. detail=.. path=.. error=..`.
    pub fn console_text(&self, verb: &str, path: &str) -> String {
        format!(
            "ERR {verb} reason={} detail={} path={} error={}",
            self.reason(),
            self.detail(),
            printable(path, 256),
            self.message()
        )
    }

    /// Whether the client may simply try again later.
    pub fn retry_after(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }
}

fn reason_of(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Busy => "busy",
        ErrorClass::Quota | ErrorClass::TooBig | ErrorClass::RateLimited => "quota",
        ErrorClass::Closed => "cut",
        _ => "policy",
    }
}

impl From<Invalid> for FsError {
    fn from(i: Invalid) -> FsError {
        FsError::Invalid(i)
    }
}

impl From<CheckoutError> for FsError {
    fn from(e: CheckoutError) -> FsError {
        match e {
            CheckoutError::Unavailable => FsError::Unavailable {
                detail: "hive-unreachable",
            },
            CheckoutError::QueueFull => FsError::Busy {
                detail: "queue-full",
            },
            CheckoutError::Timeout => FsError::Timeout,
        }
    }
}

impl From<&ClientError> for FsError {
    fn from(e: &ClientError) -> FsError {
        match e {
            ClientError::Server { class, .. } => FsError::Refused(*class),
            ClientError::Timeout { .. } => FsError::Timeout,
            ClientError::Io(_) | ClientError::Disconnected { .. } | ClientError::Protocol(_) => {
                FsError::Unavailable {
                    detail: "connection-lost",
                }
            }
            ClientError::BadPath { why, .. } => FsError::Invalid(Invalid {
                detail: "invalid-path",
                why: (*why).to_string(),
            }),
            ClientError::TooBig { what, limit, .. } => FsError::Invalid(Invalid {
                detail: "too-big",
                why: format!("{what} larger than {limit} bytes"),
            }),
            ClientError::FidsExhausted => FsError::Busy {
                detail: "fids-exhausted",
            },
        }
    }
}

impl From<&OpError> for FsError {
    fn from(e: &OpError) -> FsError {
        match e {
            OpError::Client(c) => FsError::from(c),
            OpError::TooLarge { limit } => FsError::Invalid(Invalid {
                detail: "result-too-large",
                why: format!("result larger than max_bytes={limit}"),
            }),
        }
    }
}

/// A path fit for a log line or an error text: control characters shown
/// as `?`, cut to `max` bytes on a character boundary.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_codes_and_reasons() {
        let nf = FsError::Refused(ErrorClass::NotFound);
        assert_eq!(nf.status(), StatusCode::OK);
        assert_eq!(
            nf.console_text("CAT", "/nope"),
            "ERR CAT reason=policy detail=not-found path=/nope error=hive refused: not found"
        );
        assert_eq!(FsError::Refused(ErrorClass::Quota).reason(), "quota");
        assert_eq!(FsError::Refused(ErrorClass::Closed).reason(), "cut");
        let busy = FsError::Refused(ErrorClass::Busy);
        assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(busy.reason(), "busy");
        assert_eq!(FsError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        let down = FsError::from(CheckoutError::Unavailable);
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.retry_after());
    }

    #[test]
    fn printable_cuts_and_masks() {
        assert_eq!(printable("/a\0b", 10), "/a?b");
        assert_eq!(printable("/abcdef", 4), "/abc…");
    }
}
