//! Reading a mid-sized message straight into a buffer of its own.
//!
//! A peer that sends a run of messages of one size (16 KiB binary frames, say) is read with one
//! vectored read: the frame header into a scratch array, the payload straight into a message
//! buffer, and whatever follows into the caller's read buffer. When the header is the one the
//! previous message predicted, the payload is already where it belongs and is only unmasked:
//! the copy from a read buffer into the message is saved. When it is not, the bytes are put
//! back in order and decoded as usual.

use std::io::{IoSliceMut, Result};
use std::time::Instant;

use super::{Connection, Rx};
use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::reuse;
use crate::Role;

impl Connection {
    /// Reads the next frame with one vectored read, its payload straight into a message of its
    /// own, when the previous message predicts its size: a whole frame of 4 to 32 KiB, and
    /// nothing else pending. Saves copying the payload out of the caller's read buffer.
    ///
    /// `read` fills the slices it is given in order and returns how many bytes it put there, as
    /// [`std::io::Read::read_vectored`] does; the last slice is `spill`, for what follows the
    /// frame. The result is `None` when no such read applies now (read into a buffer of your
    /// own and call [`Connection::receive`]), else what `read` returned, the bytes already
    /// taken in; `Ok(0)` means end of stream ([`Connection::receive_eof`] is still yours to
    /// call). Whatever arrived, the events are the same as with [`Connection::receive`].
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection, Role};
    /// # let mut conn = Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], Instant::now());
    /// # let mut socket: &[u8] = &[];
    /// use std::io::Read;
    /// let mut buf = [0u8; 8192];
    /// let now = Instant::now();
    /// let n = match conn.receive_scattered(now, &mut buf, |slices| socket.read_vectored(slices)) {
    ///     Some(result) => result?,
    ///     None => {
    ///         let n = socket.read(&mut buf)?;
    ///         conn.receive(&buf[..n], now);
    ///         n
    ///     }
    /// };
    /// if n == 0 {
    ///     conn.receive_eof(now);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn receive_scattered(
        &mut self,
        now: Instant,
        spill: &mut [u8],
        read: impl FnOnce(&mut [IoSliceMut<'_>]) -> Result<usize>,
    ) -> Option<Result<usize>> {
        let len = self.predicted as usize;
        if len == 0
            || !self.accepting_frames()
            || !matches!(self.rx, Rx::Header)
            || self.incoming.is_some()
            || !self.input_drained()
        {
            return None;
        }
        let expected = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: (self.role == Role::Server).then_some([0; 4]),
            payload_len: len as u64,
        };
        let header_len = expected.encoded_len();
        let mut head = [0u8; MAX_HEADER_LEN];
        let mut payload = reuse::take_initialised(len);
        let spill_len = spill.len();
        let result = read(&mut [
            IoSliceMut::new(&mut head[..header_len]),
            IoSliceMut::new(&mut payload[..len]),
            IoSliceMut::new(spill),
        ]);
        let n = match result {
            Ok(n) if n > 0 => n.min(header_len + len + spill_len),
            other => {
                reuse::give_message(payload);
                return Some(other);
            }
        };
        self.now = now;
        self.heard_from_peer();
        let header = match FrameHeader::decode(&head[..header_len]) {
            Ok(Some((h, used))) if used == header_len && h.payload_len == len as u64 => Some(h),
            _ => None,
        };
        let kind = header.and_then(|h| self.whole_message_kind(&h, len));
        match (header, kind) {
            (Some(h), Some(kind)) if n >= header_len + len => {
                payload.truncate(len);
                self.deliver_whole_message(&h, kind, payload);
                let rest = &spill[..n - header_len - len];
                if !rest.is_empty() && self.accepting_frames() {
                    self.inbuf.extend_from_slice(rest);
                }
            }
            _ => {
                // Not the predicted frame, or not all of it: the bytes in their order, decoded
                // as any others.
                self.predicted = 0;
                let got_head = n.min(header_len);
                let got_payload = (n - got_head).min(len);
                self.clear_input();
                self.inbuf.extend_from_slice(&head[..got_head]);
                self.inbuf.extend_from_slice(&payload[..got_payload]);
                self.inbuf
                    .extend_from_slice(&spill[..n - got_head - got_payload]);
                reuse::give_message(payload);
                self.resume_input();
            }
        }
        Some(result)
    }
}
