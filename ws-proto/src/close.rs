//! Close codes (RFC 6455 §7.4) and close frame payloads (§5.5.1).

use crate::error::ProtocolError;
use crate::utf8;

/// A close status code that may appear on the wire.
///
/// Construction validates the code by the RFC 6455 §7.4 ranges, so a `CloseCode` is always one an
/// endpoint may send: 1000–1003, 1007–1014 (the IANA-registered codes, including 1012 "service
/// restart", 1013 "try again later" and 1014 "bad gateway") and 3000–4999. 1004–1006, 1015 and
/// the rest of 0–2999 are never valid on the wire.
///
/// ```
/// use ws_proto::CloseCode;
/// assert_eq!(CloseCode::new(1000), Some(CloseCode::NORMAL));
/// assert!(CloseCode::new(1005).is_none());
/// assert!(CloseCode::new(4000).is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: payload inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: service restart.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Status reported when a close frame carried no code (never sent on the wire).
    pub const NO_STATUS_RECEIVED: u16 = 1005;
    /// Status reported when the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL_CLOSURE: u16 = 1006;

    /// Returns the code if it may be sent on the wire.
    pub const fn new(code: u16) -> Option<CloseCode> {
        if Self::is_valid_on_wire(code) {
            Some(CloseCode(code))
        } else {
            None
        }
    }

    /// Whether `code` may appear in a close frame (RFC 6455 §7.4.1, §7.4.2 and the IANA registry).
    pub const fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> u16 {
        c.0
    }
}

/// Longest close reason that fits a control frame (125 − 2 bytes of code).
pub const MAX_REASON_LEN: usize = 123;

/// A decoded close frame payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClosePayload {
    /// An empty payload: no status code (reported as 1005).
    Empty,
    /// A code and a UTF-8 reason (possibly empty).
    Code(CloseCode, String),
}

impl ClosePayload {
    /// Parses the payload of a close frame received from the peer.
    pub fn parse(payload: &[u8]) -> Result<ClosePayload, ProtocolError> {
        match payload.len() {
            0 => Ok(ClosePayload::Empty),
            1 => Err(ProtocolError::CloseOneByte),
            _ => {
                let raw = u16::from_be_bytes([payload[0], payload[1]]);
                let code = CloseCode::new(raw).ok_or(ProtocolError::InvalidCloseCode(raw))?;
                let reason = utf8::validate_all(&payload[2..])
                    .map_err(|_| ProtocolError::InvalidCloseReason)?;
                Ok(ClosePayload::Code(code, reason.to_owned()))
            }
        }
    }

    /// Appends the wire form of this payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let ClosePayload::Code(code, reason) = self {
            out.extend_from_slice(&code.0.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }

    /// The code as reported to the application (1005 for an empty payload).
    pub fn code_u16(&self) -> u16 {
        match self {
            ClosePayload::Empty => CloseCode::NO_STATUS_RECEIVED,
            ClosePayload::Code(c, _) => c.0,
        }
    }

    /// The reason, empty when there is none.
    pub fn reason(&self) -> &str {
        match self {
            ClosePayload::Empty => "",
            ClosePayload::Code(_, r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_on_wire() {
        for c in 0..=u16::MAX {
            let expect = (1000..=1003).contains(&c)
                || (1007..=1014).contains(&c)
                || (3000..=4999).contains(&c);
            assert_eq!(CloseCode::new(c).is_some(), expect, "code {c}");
        }
    }

    #[test]
    fn never_on_wire_codes_rejected() {
        for c in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                ClosePayload::parse(&c.to_be_bytes()),
                Err(ProtocolError::InvalidCloseCode(c))
            );
        }
    }

    #[test]
    fn one_byte_close_payload_is_protocol_error() {
        assert_eq!(ClosePayload::parse(&[3]), Err(ProtocolError::CloseOneByte));
    }

    #[test]
    fn empty_close_payload_reports_1005() {
        let p = ClosePayload::parse(&[]).unwrap();
        assert_eq!(p.code_u16(), 1005);
        assert_eq!(p.reason(), "");
    }

    #[test]
    fn close_reason_must_be_utf8() {
        let mut bad = 1000u16.to_be_bytes().to_vec();
        bad.extend_from_slice(&[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ]);
        assert_eq!(
            ClosePayload::parse(&bad),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn close_payload_round_trip() {
        let p = ClosePayload::Code(CloseCode::GOING_AWAY, "bye κόσμε".into());
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(ClosePayload::parse(&out).unwrap(), p);
    }
}
