//! The buffer a data message is received into, which may hold more initialised bytes than the
//! message has so far.
//!
//! Safe code can only read from a socket into initialised memory. A large message buffer taken
//! from the pool of sent messages ([`crate::reuse`]) is initialised already (it holds an old
//! message), so the rest of a large frame can be read straight into it
//! ([`super::Connection::receive_direct`]) with neither a copy from a read buffer nor a
//! zeroing pass first.

use crate::mask::unmask_to_front;

/// `buf[..len]` is the message so far; `buf[len..]` is initialised space for more.
#[derive(Debug, Default)]
pub(super) struct MessageBuf {
    buf: Vec<u8>,
    len: usize,
}

impl MessageBuf {
    /// Takes over `buf` as empty, its contents as space.
    pub(super) fn reusing(buf: Vec<u8>) -> MessageBuf {
        MessageBuf { buf, len: 0 }
    }

    pub(super) fn with_capacity(n: usize) -> MessageBuf {
        MessageBuf::reusing(Vec::with_capacity(n))
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The message from `start` on.
    pub(super) fn tail_mut(&mut self, start: usize) -> &mut [u8] {
        &mut self.buf[start..self.len]
    }

    /// The message from `start` on.
    pub(super) fn tail(&self, start: usize) -> &[u8] {
        &self.buf[start..self.len]
    }

    /// Initialised space after the message, at most `max` bytes of it.
    pub(super) fn space(&mut self, max: usize) -> &mut [u8] {
        let end = self.buf.len().min(self.len.saturating_add(max));
        &mut self.buf[self.len..end]
    }

    /// Bytes of initialised space after the message (see [`MessageBuf::space`]).
    pub(super) fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The address just past the message, where [`MessageBuf::space`] begins: only to choose
    /// where in that space a read should land (see `direct_lead`).
    pub(super) fn end_addr(&self) -> usize {
        self.buf.as_ptr() as usize + self.len
    }

    /// Takes `n` bytes read into [`MessageBuf::space`], `lead` bytes into it, into the message:
    /// moved into place and unmasked with `mask` (from payload offset `offset`) in one pass.
    pub(super) fn take_read(
        &mut self,
        lead: usize,
        n: usize,
        mask: Option<[u8; 4]>,
        offset: usize,
    ) {
        let end = self.len + lead + n;
        assert!(end <= self.buf.len(), "read more than the space");
        unmask_to_front(&mut self.buf[self.len..end], lead, mask, offset);
        self.len += n;
    }

    /// Capacity for `additional` more bytes, as [`Vec::reserve`]. Makes no new space.
    pub(super) fn reserve(&mut self, additional: usize) {
        let need = self.len.saturating_add(additional);
        if need > self.buf.capacity() {
            self.buf.reserve(need - self.buf.len());
        }
    }

    /// As [`Vec::reserve_exact`], counted from the message's end.
    pub(super) fn reserve_exact(&mut self, additional: usize) {
        let need = self.len.saturating_add(additional);
        if need > self.buf.capacity() {
            self.buf.reserve_exact(need - self.buf.len());
        }
    }

    pub(super) fn spare_capacity(&self) -> usize {
        self.buf.capacity() - self.len
    }

    pub(super) fn extend_from_slice(&mut self, data: &[u8]) {
        match self.buf.get_mut(self.len..self.len + data.len()) {
            Some(space) => space.copy_from_slice(data),
            None => {
                self.buf.truncate(self.len);
                self.buf.extend_from_slice(data);
            }
        }
        self.len += data.len();
    }

    /// Runs `f` on the message as a plain vector, for code that appends to one (the
    /// inflater); the space is given up.
    pub(super) fn append_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        self.buf.truncate(self.len);
        let r = f(&mut self.buf);
        self.len = self.buf.len();
        r
    }

    pub(super) fn into_vec(mut self) -> Vec<u8> {
        self.buf.truncate(self.len);
        self.buf
    }

    pub(super) fn take(&mut self) -> Vec<u8> {
        std::mem::take(self).into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_is_reused_without_being_exposed() {
        let mut m = MessageBuf::reusing(vec![9; 10]);
        assert_eq!(m.len(), 0);
        m.extend_from_slice(b"abc");
        assert_eq!(m.tail(0), b"abc");
        assert_eq!(m.space(4), &[9, 9, 9, 9]);
        m.space(100).fill(1);
        m.take_read(0, 7, None, 0);
        assert_eq!(m.tail(0), b"abc\x01\x01\x01\x01\x01\x01\x01");
        m.extend_from_slice(b"de");
        assert_eq!(m.len(), 12);
        let mut m2 = MessageBuf::reusing(vec![5; 8]);
        m2.extend_from_slice(b"xy");
        m2.append_with(|v| v.extend_from_slice(b"z"));
        assert_eq!(m2.take(), b"xyz");
        assert_eq!(m2.len(), 0);
        m.reserve_exact(100);
        assert!(m.spare_capacity() >= 100);
        assert_eq!(&m.into_vec()[10..], b"de");
    }

    #[test]
    fn a_read_placed_further_on_is_moved_into_place_and_unmasked() {
        let key = [1, 2, 3, 4];
        let mut m = MessageBuf::reusing(vec![0; 1000]);
        m.extend_from_slice(b"ab");
        let mut wire = *b"cdefghij";
        crate::mask::apply_mask(&mut wire, key, 2);
        m.space(400)[300..308].copy_from_slice(&wire);
        m.take_read(300, 8, Some(key), 2);
        assert_eq!(m.tail(0), b"abcdefghij");
        m.space(10)[..1].copy_from_slice(b"k");
        m.take_read(0, 1, None, 0);
        assert_eq!(m.take(), b"abcdefghijk");
    }
}
