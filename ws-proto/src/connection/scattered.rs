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
        let mut plan = self.plan_scattered()?;
        let result = read(&mut plan.slices(spill));
        self.finish_scattered(plan, spill, &result, now);
        Some(result)
    }

    /// The first half of [`Connection::receive_scattered`], for an adapter that must not hold
    /// the connection while it reads (a blocking read, with the connection behind a lock that
    /// other threads take to send): the buffers to read into, when the previous message predicts
    /// the next one's size. Read into [`ScatteredRead::slices`], then hand the result to
    /// [`Connection::finish_scattered`], whatever it was; in between, the connection may be used
    /// for anything but input.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection, Role};
    /// # let mut conn = Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], Instant::now());
    /// # let mut socket: &[u8] = &[];
    /// use std::io::Read;
    /// let mut spill = [0u8; 8192];
    /// if let Some(mut plan) = conn.plan_scattered() {
    ///     let result = socket.read_vectored(&mut plan.slices(&mut spill));
    ///     conn.finish_scattered(plan, &spill, &result, Instant::now());
    /// }
    /// ```
    pub fn plan_scattered(&mut self) -> Option<ScatteredRead> {
        let len = self.predicted as usize;
        if len == 0 || !self.between_frames() {
            return None;
        }
        let expected = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: (self.role == Role::Server).then_some([0; 4]),
            payload_len: len as u64,
        };
        Some(ScatteredRead {
            head: [0; MAX_HEADER_LEN],
            header_len: expected.encoded_len(),
            payload: reuse::take_initialised(len),
            len,
        })
    }

    /// The second half of [`Connection::receive_scattered`]: takes in what the read of `plan`
    /// brought, `result` being what it returned and `spill` its last slice. Errors and `Ok(0)`
    /// take nothing in ([`Connection::receive_eof`] is still the caller's to call).
    pub fn finish_scattered(
        &mut self,
        plan: ScatteredRead,
        spill: &[u8],
        result: &Result<usize>,
        now: Instant,
    ) {
        let ScatteredRead {
            head,
            header_len,
            mut payload,
            len,
        } = plan;
        let n = match result {
            Ok(n) if *n > 0 => (*n).min(header_len + len + spill.len()),
            _ => {
                reuse::give_message(payload);
                return;
            }
        };
        let got_head = n.min(header_len);
        let got_payload = (n - got_head).min(len);
        let rest = &spill[..n - got_head - got_payload];
        if !self.between_frames() {
            // The connection changed while the read ran without it (closed, say): the bytes go
            // the general way, which knows what to do with input in any state.
            let mut bytes = Vec::with_capacity(n);
            bytes.extend_from_slice(&head[..got_head]);
            bytes.extend_from_slice(&payload[..got_payload]);
            bytes.extend_from_slice(rest);
            reuse::give_message(payload);
            self.receive(&bytes, now);
            return;
        }
        self.now = now;
        self.heard_from_peer();
        let header = match FrameHeader::decode(&head[..header_len]) {
            Ok(Some((h, used))) if used == header_len && h.payload_len == len as u64 => Some(h),
            _ => None,
        };
        let kind = header.and_then(|h| self.whole_message_kind(&h, len));
        match (header, kind) {
            (Some(h), Some(kind)) if got_payload == len => {
                payload.truncate(len);
                self.deliver_whole_message(&h, kind, payload);
                if !rest.is_empty() && self.accepting_frames() {
                    self.inbuf.extend_from_slice(rest);
                }
            }
            _ => {
                // Not the predicted frame, or not all of it: the bytes in their order, decoded
                // as any others.
                self.predicted = 0;
                self.clear_input();
                self.inbuf.extend_from_slice(&head[..got_head]);
                self.inbuf.extend_from_slice(&payload[..got_payload]);
                self.inbuf.extend_from_slice(rest);
                reuse::give_message(payload);
                self.resume_input();
            }
        }
    }
}

impl Connection {
    /// Whether the input stands between two messages, all of it decoded and taken, and frames
    /// are still accepted: where a planned read may begin, and must still be when it ends.
    fn between_frames(&self) -> bool {
        self.accepting_frames()
            && matches!(self.rx, Rx::Header)
            && self.incoming.is_none()
            && self.input_drained()
    }
}

/// The buffers of one vectored read planned by [`Connection::plan_scattered`]: the frame header
/// the previous message predicts, into a scratch array, and its payload, straight into a
/// message buffer of its own.
#[derive(Debug)]
pub struct ScatteredRead {
    head: [u8; MAX_HEADER_LEN],
    header_len: usize,
    payload: Vec<u8>,
    len: usize,
}

impl ScatteredRead {
    /// The slices to read into, in order: the header's, the payload's, then `spill`, for what
    /// follows the frame.
    pub fn slices<'a>(&'a mut self, spill: &'a mut [u8]) -> [IoSliceMut<'a>; 3] {
        [
            IoSliceMut::new(&mut self.head[..self.header_len]),
            IoSliceMut::new(&mut self.payload[..self.len]),
            IoSliceMut::new(spill),
        ]
    }
}
