//! `Sec-WebSocket-Extensions` header syntax (RFC 6455 §9.1 with RFC 7230 tokens).
//!
//! This parser sees raw peer input (and is a fuzz target), so it never panics, never indexes out
//! of bounds, and does work linear in the input.

use std::borrow::Cow;

/// One extension of a `Sec-WebSocket-Extensions` header: `name; param; param=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension token, as sent (compare with [`str::eq_ignore_ascii_case`]).
    pub name: &'a str,
    /// Its parameters, in the order they were sent, duplicates included.
    pub params: Vec<ExtensionParam<'a>>,
}

/// One parameter of an [`Extension`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionParam<'a> {
    /// The parameter token, as sent.
    pub name: &'a str,
    /// The value after `=`, unquoted and unescaped; `None` for a parameter without `=`.
    pub value: Option<Cow<'a, str>>,
}

/// What is wrong in an unusable `Sec-WebSocket-Extensions` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionSyntaxErrorKind {
    /// An extension or parameter name was expected (empty, or a byte that is not a `tchar`).
    ExpectedToken,
    /// `=` was not followed by a token or a quoted string.
    ExpectedValue,
    /// After an extension name or parameter, something other than `;`, `,` or the end.
    ExpectedSeparator,
    /// A quoted string without its closing `"`, or with a byte not allowed inside one.
    BadQuotedString,
    /// A quoted value that is not a token once unescaped (RFC 6455 §9.1 requires one).
    QuotedValueNotToken,
}

/// A `Sec-WebSocket-Extensions` header value that does not follow RFC 6455 §9.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Sec-WebSocket-Extensions header #{header} at byte {offset}: {kind:?}")]
pub struct ExtensionSyntaxError {
    /// Index of the offending header value in the slice passed to [`parse_extensions`].
    pub header: usize,
    /// Byte offset of the problem inside that value.
    pub offset: usize,
    /// What was wrong.
    pub kind: ExtensionSyntaxErrorKind,
}

/// Parses every `Sec-WebSocket-Extensions` value, in order, into one list of extensions.
///
/// Empty list elements (`a, , b`) and optional whitespace around `,`, `;` and `=` are accepted,
/// as RFC 7230 §7 asks of recipients.
///
/// # Errors
///
/// Anything else that is not `extension *( ";" param )` with token names and token or
/// quoted-string values (a quoted value must be a token once unescaped, RFC 6455 §9.1) makes the
/// whole header unusable: [`ExtensionSyntaxError`] says which value, where and why.
pub fn parse_extensions<'a>(
    headers: &[&'a [u8]],
) -> Result<Vec<Extension<'a>>, ExtensionSyntaxError> {
    let mut out = Vec::new();
    for (header, value) in headers.iter().enumerate() {
        let mut p = Parser {
            s: value,
            pos: 0,
            header,
        };
        p.parse_list(&mut out)?;
    }
    Ok(out)
}

/// RFC 7230 §3.2.6 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    header: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: ExtensionSyntaxErrorKind) -> ExtensionSyntaxError {
        ExtensionSyntaxError {
            header: self.header,
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let bytes = self.s.get(start..self.pos)?;
        if bytes.is_empty() {
            return None;
        }
        // tchars are ASCII, so this cannot fail; a failure is treated as "no token" anyway.
        std::str::from_utf8(bytes).ok()
    }

    fn parse_list(&mut self, out: &mut Vec<Extension<'a>>) -> Result<(), ExtensionSyntaxError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = self
                .token()
                .ok_or_else(|| self.err(ExtensionSyntaxErrorKind::ExpectedToken))?;
            let mut params = Vec::new();
            loop {
                self.skip_ows();
                match self.peek() {
                    None | Some(b',') => break,
                    Some(b';') => self.pos += 1,
                    Some(_) => return Err(self.err(ExtensionSyntaxErrorKind::ExpectedSeparator)),
                }
                self.skip_ows();
                let pname = self
                    .token()
                    .ok_or_else(|| self.err(ExtensionSyntaxErrorKind::ExpectedToken))?;
                self.skip_ows();
                let value = if self.peek() == Some(b'=') {
                    self.pos += 1;
                    self.skip_ows();
                    Some(self.value()?)
                } else {
                    None
                };
                params.push(ExtensionParam { name: pname, value });
            }
            out.push(Extension { name, params });
        }
    }

    fn value(&mut self) -> Result<Cow<'a, str>, ExtensionSyntaxError> {
        if self.peek() != Some(b'"') {
            return self
                .token()
                .map(Cow::Borrowed)
                .ok_or_else(|| self.err(ExtensionSyntaxErrorKind::ExpectedValue));
        }
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            let Some(b) = self.peek() else {
                self.pos = open;
                return Err(self.err(ExtensionSyntaxErrorKind::BadQuotedString));
            };
            match b {
                b'"' => break,
                b'\\' => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    let esc_at = self.pos;
                    let Some(c) = self.s.get(esc_at + 1).copied() else {
                        return Err(self.err(ExtensionSyntaxErrorKind::BadQuotedString));
                    };
                    if !(c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80) {
                        self.pos = esc_at + 1;
                        return Err(self.err(ExtensionSyntaxErrorKind::BadQuotedString));
                    }
                    let buf = unescaped
                        .get_or_insert_with(|| self.s.get(start..esc_at).unwrap_or(&[]).to_vec());
                    buf.push(c);
                    self.pos += 2;
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => {
                    if let Some(buf) = unescaped.as_mut() {
                        buf.push(b);
                    }
                    self.pos += 1;
                }
                _ => return Err(self.err(ExtensionSyntaxErrorKind::BadQuotedString)),
            }
        }
        let raw = self.s.get(start..self.pos).unwrap_or(&[]);
        self.pos += 1;
        let value = match unescaped {
            None => is_token(raw).then(|| std::str::from_utf8(raw).ok().map(Cow::Borrowed)),
            Some(buf) => is_token(&buf).then(|| String::from_utf8(buf).ok().map(Cow::Owned)),
        }
        .flatten();
        value.ok_or(ExtensionSyntaxError {
            header: self.header,
            offset: open,
            kind: ExtensionSyntaxErrorKind::QuotedValueNotToken,
        })
    }
}
