//! Reading a mid-sized message straight into a buffer of its own.
//!
//! A peer that sends a run of messages of one size (16 KiB binary frames, say) is read with one
//! plain read of the size the previous message predicts, header first, into the buffer that
//! becomes the message. When the header is the predicted one, the payload is unmasked and moved
//! to the front of its buffer in one pass (the unmask makes that pass anyway): the copy from a
//! read buffer into the message is saved. When it is not, the bytes are decoded as usual.
//!
//! Not a vectored read of the header into a scratch array and the payload into the message,
//! which would need no move: on Linux a `readv` costs more than the move it saves (2% of the
//! CPU per message of a plain 16 KiB echo, side by side; the move runs at the unmask's speed).

use std::io::Result;
use std::time::Instant;

use super::{Connection, Rx};
use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::mask::unmask_to_front;
use crate::reuse;
use crate::Role;

impl Connection {
    /// Reads the next frame straight into a message buffer of its own, when the previous message
    /// predicts its size: a whole frame of 4 to about 32 KiB, and nothing else pending. Saves
    /// copying the payload out of the caller's read buffer.
    ///
    /// `read` gets the buffer to fill and returns how many bytes it put there, as
    /// [`std::io::Read::read`] does. The buffer holds the predicted frame and a few bytes more,
    /// so a read that fills it less than full emptied the socket (as an adapter on
    /// edge-triggered readiness needs to know). The result is `None` when no such read applies
    /// now (read into a buffer of your own and call [`Connection::receive`]), else what `read`
    /// returned, the bytes already taken in; `Ok(0)` means end of stream
    /// ([`Connection::receive_eof`] is still yours to call). Whatever arrived, the events are
    /// the same as with [`Connection::receive`].
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection, Role};
    /// # let mut conn = Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], Instant::now());
    /// # let mut socket: &[u8] = &[];
    /// use std::io::Read;
    /// let mut buf = [0u8; 8192];
    /// let now = Instant::now();
    /// let n = match conn.receive_predicted(now, |space| socket.read(space)) {
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
    pub fn receive_predicted(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Option<Result<usize>> {
        let mut plan = self.plan_predicted()?;
        let result = read(plan.buffer());
        self.finish_predicted(plan, &result, now);
        Some(result)
    }

    /// The first half of [`Connection::receive_predicted`], for an adapter that must not hold
    /// the connection while it reads (a blocking read, with the connection behind a lock that
    /// other threads take to send): the buffer to read into, when the previous message predicts
    /// the next one's size. Read into [`PredictedRead::buffer`], then hand the result to
    /// [`Connection::finish_predicted`], whatever it was; in between, the connection may be used
    /// for anything but input.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection, Role};
    /// # let mut conn = Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], Instant::now());
    /// # let mut socket: &[u8] = &[];
    /// use std::io::Read;
    /// if let Some(mut plan) = conn.plan_predicted() {
    ///     let result = socket.read(plan.buffer());
    ///     conn.finish_predicted(plan, &result, Instant::now());
    /// }
    /// ```
    pub fn plan_predicted(&mut self) -> Option<PredictedRead> {
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
        let header_len = expected.encoded_len();
        Some(PredictedRead {
            buf: reuse::take_initialised(read_size(header_len, len)),
            header_len,
            len,
        })
    }

    /// The second half of [`Connection::receive_predicted`]: takes in what the read of `plan`
    /// brought, `result` being what it returned. Errors and `Ok(0)` take nothing in
    /// ([`Connection::receive_eof`] is still the caller's to call).
    pub fn finish_predicted(&mut self, plan: PredictedRead, result: &Result<usize>, now: Instant) {
        let PredictedRead {
            mut buf,
            header_len,
            len,
        } = plan;
        let n = match result {
            Ok(n) if *n > 0 => (*n).min(read_size(header_len, len)),
            _ => {
                reuse::give_message(buf);
                return;
            }
        };
        if !self.between_frames() {
            // The connection changed while the read ran without it (closed, say): the bytes go
            // the general way, which knows what to do with input in any state.
            let bytes = buf[..n].to_vec();
            reuse::give_message(buf);
            self.receive(&bytes, now);
            return;
        }
        self.now = now;
        self.heard_from_peer();
        let header = match FrameHeader::decode(&buf[..n.min(header_len)]) {
            Ok(Some((h, used))) if used == header_len && h.payload_len == len as u64 => Some(h),
            _ => None,
        };
        let kind = header.and_then(|h| self.whole_message_kind(&h, len));
        let end = header_len + len;
        match (header, kind) {
            (Some(h), Some(kind)) if n >= end => {
                // What came after the frame, kept until the message is out of the buffer.
                let mut rest = [0u8; READ_AHEAD];
                let rest_len = n - end;
                rest[..rest_len].copy_from_slice(&buf[end..n]);
                unmask_to_front(&mut buf[..end], header_len, h.mask, 0);
                buf.truncate(len);
                self.deliver_whole_message(None, kind, buf);
                if rest_len > 0 && self.accepting_frames() {
                    self.inbuf.extend_from_slice(&rest[..rest_len]);
                }
            }
            _ => {
                // Not the predicted frame, or not all of it: the bytes decoded as any others.
                self.predicted = 0;
                self.clear_input();
                self.inbuf.extend_from_slice(&buf[..n]);
                reuse::give_message(buf);
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

/// Bytes a planned read takes beyond the predicted frame: a read that returns fewer than it
/// asked for emptied the socket, which an adapter on edge-triggered readiness needs to know
/// without a read more.
const READ_AHEAD: usize = 64;

/// Bytes a planned read asks for: the predicted frame and [`READ_AHEAD`] more.
fn read_size(header_len: usize, len: usize) -> usize {
    header_len + len + READ_AHEAD
}

/// Largest message that predicts its successor: the buffer of a planned read must fit the
/// per-thread pool of small message buffers, to be taken from it and given back.
pub(super) const PREDICTED_MAX: usize = reuse::SMALL_CAPACITY - MAX_HEADER_LEN - READ_AHEAD;

/// The buffer of one read planned by [`Connection::plan_predicted`]: room for the frame the
/// previous message predicts, header first, and a little more.
#[derive(Debug)]
pub struct PredictedRead {
    buf: Vec<u8>,
    header_len: usize,
    len: usize,
}

impl PredictedRead {
    /// The buffer to read into: room for the predicted frame and a few bytes more.
    pub fn buffer(&mut self) -> &mut [u8] {
        // A recycled buffer may be longer than this read is planned for.
        &mut self.buf[..read_size(self.header_len, self.len)]
    }
}
