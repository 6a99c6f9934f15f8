//! Placeholder while the state machine is written (connection_wip.rs).
#![allow(missing_docs, dead_code)]
use crate::error::ConnectionError;
use crate::handshake::{Request, Response};
pub struct Connection;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message { Text(String), Binary(Vec<u8>) }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind { Text, Binary }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy { Local, Remote, Error }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed { pub by: ClosedBy, pub code: u16, pub reason: String, pub error: Option<ConnectionError> }
#[derive(Debug, Clone, Default)]
pub struct Accept { pub protocol: Option<String>, pub headers: Vec<(String, String)> }
#[derive(Debug)]
pub enum Event { Request(Request), HttpRequest(Request), Connected(Response), Message(Message), Closed(Closed) }
