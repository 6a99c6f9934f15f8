//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! std's validator is fast (it checks whole words at a time), so each chunk goes through
//! `std::str::from_utf8`; only a code point split across chunks (at most 3 bytes) is carried over.
//! std reports an incomplete tail separately from an impossible sequence (`error_len() == None`),
//! and it rejects impossible prefixes (such as `F4 90` or `ED A0`) at once, which is what lets us
//! fail a text message as soon as its bytes can no longer be valid.

/// The bytes can never become valid UTF-8, whatever follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a complete byte string, returning it as `&str`.
pub fn validate_all(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

/// Streaming validator: feed chunks in order, then call [`Utf8Validator::finish`].
///
/// ```
/// use ws_proto::utf8::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes();
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.finish().is_ok());
/// assert!(v.feed(&[0xff]).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

fn sequence_len(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// Validates the next chunk. Fails as soon as the bytes seen so far cannot start valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]) - have;
            let take = need.min(data.len());
            self.pending[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            match std::str::from_utf8(&self.pending[..now]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    self.pending_len = now as u8;
                    return Ok(());
                }
            }
            data = &data[take..];
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: fails if a code point is left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.pending_len != 0;
        self.pending_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Forgets any partial code point.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_validate(bytes: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &c in cuts {
            let c = c.clamp(start, bytes.len());
            if v.feed(&bytes[start..c]).is_err() {
                return false;
            }
            start = c;
        }
        v.feed(&bytes[start..]).is_ok() && v.finish().is_ok()
    }

    #[test]
    fn fails_fast_on_impossible_prefix_split_across_chunks() {
        // U+110000 would start F4 90: impossible after the second byte even though incomplete.
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[b'a', 0xf4]).is_ok());
        assert!(v.feed(&[0x90]).is_err());
        // A surrogate (ED A0 ..) is impossible after its second byte.
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xed]).is_ok());
        assert!(v.feed(&[0xa0]).is_err());
    }

    #[test]
    fn incomplete_at_end_fails_finish() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xe2, 0x82]).is_ok());
        assert!(v.finish().is_err());
    }

    #[test]
    fn autobahn_6_4_style_fail_in_middle() {
        // κόσμε followed by an invalid byte: detected at the chunk containing it.
        let text = "κόσμε".as_bytes();
        let mut v = Utf8Validator::default();
        assert!(v.feed(text).is_ok());
        assert!(v.feed(&[0xf4, 0x90, 0x80, 0x80]).is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_std_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                              cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(split_validate(&bytes, &cuts), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn agrees_with_std_on_valid_text(s in "\\PC*", cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(split_validate(s.as_bytes(), &cuts));
        }

        #[test]
        fn each_byte_alone_agrees(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let cuts: Vec<usize> = (0..bytes.len()).collect();
            prop_assert_eq!(split_validate(&bytes, &cuts), std::str::from_utf8(&bytes).is_ok());
        }
    }
}
