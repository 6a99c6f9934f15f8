//! RFC 7692 §5 and §7.1: the permessage-deflate offer, the server's choice, the client's check.

use std::fmt::Write as _;

use super::params::{parse_extensions, Extension};
use super::{DeflateConfig, DeflateParams, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::error::HandshakeError;

/// The extension token of RFC 7692.
pub const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Config values outside 8–15 would put an invalid value on the wire, so they are clamped.
pub(crate) fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between 8 to 15".
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

/// The four parameters RFC 7692 defines, as they appear in one offer or response.
#[derive(Default)]
struct RawParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `Some(bits)` when present (a value is mandatory).
    server_max_window_bits: Option<u8>,
    /// `Some(None)` when present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// Reads the parameters of one permessage-deflate element. `Err` names the first rule it breaks
/// (RFC 7692 §7: unknown parameter, invalid value, or the same parameter twice).
fn read_params(ext: &Extension<'_>) -> Result<RawParams, &'static str> {
    let mut p = RawParams::default();
    let mut seen = [false; 4];
    for param in &ext.params {
        let name = param.name;
        let value = param.value.as_deref();
        let index = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))
        .ok_or("unknown permessage-deflate parameter")?;
        if std::mem::replace(&mut seen[index], true) {
            return Err("duplicate permessage-deflate parameter");
        }
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err("no_context_takeover parameter with a value");
                }
                if index == 0 {
                    p.server_no_context_takeover = true;
                } else {
                    p.client_no_context_takeover = true;
                }
            }
            2 => {
                let bits = value
                    .and_then(window_bits)
                    .ok_or("invalid server_max_window_bits")?;
                p.server_max_window_bits = Some(bits);
            }
            _ => {
                let bits = match value {
                    None => None,
                    Some(v) => Some(window_bits(v).ok_or("invalid client_max_window_bits")?),
                };
                p.client_max_window_bits = Some(bits);
            }
        }
    }
    Ok(p)
}

/// Server: picks the first offer in `extension_headers` that we can honour. Returns the agreed
/// parameters and the `Sec-WebSocket-Extensions` response value. Invalid offers are skipped.
///
/// Offers are the `permessage-deflate` elements of the headers, in order; other extensions are
/// ignored. An offer with an unknown, duplicated or invalid parameter is declined and the next
/// one is tried (RFC 7692 §7). A header that is not valid syntax at all is unusable: nothing is
/// negotiated (use [`parse_extensions`] to tell that case apart, e.g. to answer 400).
///
/// The response states exactly the agreement:
/// - `server_no_context_takeover` if the client asked for it or `config` sets it;
/// - `client_no_context_takeover` if the client offered it or `config` sets it;
/// - `server_max_window_bits=N` if the client asked, with N = min(its value,
///   `config.server_max_window_bits`). When the client did not ask, the parameter is not added
///   (some clients fail on it); [`PerMessageDeflate`](super::PerMessageDeflate) still compresses
///   within `config.server_max_window_bits`, which a sender may always do;
/// - `client_max_window_bits=M` only if the client offered the parameter and a value is known:
///   M = min(the client's value, `config.client_max_window_bits`), whichever are present.
///
/// Window sizes 8–15 are all supported, so a well-formed offer is never declined for its values.
#[must_use]
pub fn negotiate_server(
    config: &DeflateConfig,
    extension_headers: &[&[u8]],
) -> Option<(DeflateParams, String)> {
    if !config.enabled {
        return None;
    }
    let extensions = parse_extensions(extension_headers).ok()?;
    extensions
        .iter()
        .filter(|ext| ext.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|ext| read_params(ext).ok())
        .map(|offer| agree(config, &offer))
}

fn agree(config: &DeflateConfig, offer: &RawParams) -> (DeflateParams, String) {
    let server_no_context_takeover =
        offer.server_no_context_takeover || config.server_no_context_takeover;
    let client_no_context_takeover =
        offer.client_no_context_takeover || config.client_no_context_takeover;
    let server_limit = config
        .server_max_window_bits
        .map_or(MAX_WINDOW_BITS, clamp_bits);
    let server_max_window_bits = offer.server_max_window_bits.map(|n| n.min(server_limit));
    let client_max_window_bits = offer.client_max_window_bits.and_then(|offered| {
        match (offered, config.client_max_window_bits.map(clamp_bits)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    });

    let mut response = String::from(EXTENSION_NAME);
    if server_no_context_takeover {
        response.push_str("; ");
        response.push_str(SERVER_NO_CONTEXT_TAKEOVER);
    }
    if client_no_context_takeover {
        response.push_str("; ");
        response.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
    }
    if let Some(bits) = server_max_window_bits {
        let _ = write!(response, "; {SERVER_MAX_WINDOW_BITS}={bits}");
    }
    if let Some(bits) = client_max_window_bits {
        let _ = write!(response, "; {CLIENT_MAX_WINDOW_BITS}={bits}");
    }
    let params = DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        client_max_window_bits: client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
    };
    (params, response)
}

/// Client: the `Sec-WebSocket-Extensions` offer, or `None` when disabled.
///
/// Always offers `client_max_window_bits` (bare, or with `config.client_max_window_bits`): every
/// window is supported on the sending side, and it lets the server shrink our window. Adds
/// `server_no_context_takeover`, `client_no_context_takeover` and `server_max_window_bits=N` as
/// configured.
#[must_use]
pub fn client_offer(config: &DeflateConfig) -> Option<String> {
    if !config.enabled {
        return None;
    }
    let mut offer = String::from(EXTENSION_NAME);
    if config.server_no_context_takeover {
        offer.push_str("; ");
        offer.push_str(SERVER_NO_CONTEXT_TAKEOVER);
    }
    if config.client_no_context_takeover {
        offer.push_str("; ");
        offer.push_str(CLIENT_NO_CONTEXT_TAKEOVER);
    }
    if let Some(bits) = config.server_max_window_bits {
        let _ = write!(offer, "; {SERVER_MAX_WINDOW_BITS}={}", clamp_bits(bits));
    }
    offer.push_str("; ");
    offer.push_str(CLIENT_MAX_WINDOW_BITS);
    if let Some(bits) = config.client_max_window_bits {
        let _ = write!(offer, "={}", clamp_bits(bits));
    }
    Some(offer)
}

/// Client: checks the server's `Sec-WebSocket-Extensions` response against our offer.
///
/// `Ok(None)`: the server did not accept permessage-deflate. Absent window bits mean 15.
/// `client_no_context_takeover` is agreed when the server says so or we offered it: an offer of it
/// is a promise (RFC 7692 §7.1.1.2).
///
/// # Errors
///
/// [`HandshakeError::BadExtension`] (RFC 7692 §7: the client must fail the connection) when the
/// header is malformed, names any other extension or permessage-deflate when it was not offered
/// or more than once, repeats a parameter, has an unknown parameter or an invalid value, states a
/// window larger than we asked for, or leaves out `server_no_context_takeover` or
/// `server_max_window_bits` that we requested.
pub fn accept_response(
    config: &DeflateConfig,
    extension_headers: &[&[u8]],
) -> Result<Option<DeflateParams>, HandshakeError> {
    let bad = HandshakeError::BadExtension;
    let extensions = parse_extensions(extension_headers)
        .map_err(|_| bad("malformed Sec-WebSocket-Extensions header"))?;
    let mut accepted = None;
    for ext in &extensions {
        if !ext.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(bad("server selected an extension that was not offered"));
        }
        if !config.enabled {
            return Err(bad(
                "server selected permessage-deflate, which was not offered",
            ));
        }
        if accepted.replace(ext).is_some() {
            return Err(bad("server selected permessage-deflate more than once"));
        }
    }
    let Some(ext) = accepted else {
        return Ok(None);
    };
    let response = read_params(ext).map_err(bad)?;

    let requested_server_bits = config.server_max_window_bits.map(clamp_bits);
    if config.server_no_context_takeover && !response.server_no_context_takeover {
        return Err(bad(
            "server ignored the requested server_no_context_takeover",
        ));
    }
    let server_max_window_bits = match (response.server_max_window_bits, requested_server_bits) {
        (None, Some(requested)) if requested < MAX_WINDOW_BITS => {
            return Err(bad("server ignored the requested server_max_window_bits"))
        }
        (Some(bits), Some(requested)) if bits > requested => {
            return Err(bad("server_max_window_bits larger than requested"))
        }
        (bits, _) => bits.unwrap_or(MAX_WINDOW_BITS),
    };
    // We always offer client_max_window_bits; the check stays in case that ever changes.
    let offered_client_bits: Option<Option<u8>> =
        Some(config.client_max_window_bits.map(clamp_bits));
    let client_max_window_bits = match (response.client_max_window_bits, offered_client_bits) {
        (None, _) => MAX_WINDOW_BITS,
        (Some(_), None) => return Err(bad("client_max_window_bits was not offered")),
        // RFC 7692 §7.1.2.2: in a response the parameter must have a value.
        (Some(None), Some(_)) => return Err(bad("client_max_window_bits without a value")),
        (Some(Some(bits)), Some(Some(offered))) if bits > offered => {
            return Err(bad("client_max_window_bits larger than offered"))
        }
        (Some(Some(bits)), Some(_)) => bits,
    };
    Ok(Some(DeflateParams {
        server_no_context_takeover: response.server_no_context_takeover,
        client_no_context_takeover: response.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }))
}
