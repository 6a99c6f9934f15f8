//! The system calls both servers make per message: a session's socket read with `recv` and
//! written with `send` or `sendmsg`, through rustix's safe API. Included by
//! ws-mio and ws-std (`#[path = "../../adapters/socket_io.rs"] mod socket_io;`), since ws-proto
//! has no I/O.
//!
//! Not std's `read` and `write` (nor `readv` and `writev`, which is what `read_vectored` and
//! `write_vectored` are): on a socket those pass through the file layer first (the file
//! position lock, permission and notification hooks), and glibc wraps each in a
//! thread-cancellation point. The socket calls skip both: on a 16 KiB echo, ws-mio spent 1.5%
//! less CPU per message with them (scripts/bench-ab.sh, side by side). Reads are never
//! vectored: a `readv` of a few slices cost a plain echo 2% more CPU per message than `recv`
//! into one buffer (16 KiB, side by side), so a predicted message is read whole into its own
//! buffer, header first (`Connection::receive_predicted`).

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};
use ws_proto::server::Session;

/// Flags of every write: never block (in ws-std the writer may be any thread, holding the
/// session lock, on a blocking socket), and report a closed peer as an error rather than a
/// signal.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const SEND_FLAGS: SendFlags = SendFlags::DONTWAIT.union(SendFlags::NOSIGNAL);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const SEND_FLAGS: SendFlags = SendFlags::DONTWAIT;

/// One read into `buf`.
pub(crate) fn recv(stream: &impl AsFd, buf: &mut [u8], flags: RecvFlags) -> io::Result<usize> {
    rustix::net::recv(stream, buf, flags)
        .map(|(n, _)| n)
        .map_err(io::Error::from)
}

/// One write of `slices`, in order: the usual reply is one slice, and `send` then skips
/// `sendmsg`'s copying in of the I/O vector.
pub(crate) fn send(stream: &impl AsFd, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    match slices {
        [one] => rustix::net::send(stream, one, SEND_FLAGS),
        _ => rustix::net::sendmsg(
            stream,
            slices,
            &mut SendAncillaryBuffer::default(),
            SEND_FLAGS,
        ),
    }
    .map_err(io::Error::from)
}

/// Writes the session's output until it is all written or the socket would block. An error
/// means the transport failed (a write that took nothing counts as one): the caller ends the
/// session's input.
pub(crate) fn write_output(session: &mut Session, stream: &impl AsFd) -> io::Result<()> {
    while session.wants_write() {
        match session.write_output(|io| send(stream, io)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
