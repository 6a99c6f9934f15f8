//! Closure-based callbacks, in the style of the Python servers' `set_fn_*`.

use core::net::SocketAddr;

use super::api::{Decision, Handler, HttpResponse, ServerApi};
use super::{Client, ServerError};
use crate::connection::{Accept, Closed, Message, MessageRef};
use crate::handshake::Request;

type Cb<A> = Option<Box<dyn Fn(&dyn ServerApi, &Client, A) + Send + Sync>>;

/// A [`Handler`] made of closures; unset callbacks do nothing.
///
/// ```
/// use ws_proto::server::{Callbacks, ServerApi};
/// use ws_proto::Message;
///
/// let handler = Callbacks::new()
///     .on_new_client(|api, client| api.send_to_all(Message::Text(format!("{} joined", client.id))))
///     .on_message(|api, client, message| api.send(client.id, message));
/// # let _ = handler;
/// ```
#[derive(Default)]
#[allow(clippy::type_complexity)]
pub struct Callbacks {
    handshake: Option<Box<dyn Fn(&Request, SocketAddr) -> Decision + Send + Sync>>,
    http: Option<Box<dyn Fn(&Request) -> HttpResponse + Send + Sync>>,
    new_client: Cb<()>,
    left: Option<Box<dyn Fn(&dyn ServerApi, &Client, &Closed) + Send + Sync>>,
    message: Cb<Message>,
    ping: Option<Box<dyn Fn(&dyn ServerApi, &Client, &[u8]) + Send + Sync>>,
    pong: Option<Box<dyn Fn(&dyn ServerApi, &Client, &[u8]) + Send + Sync>>,
    subscribed: Option<Box<dyn Fn(&dyn ServerApi, &Client, &str) + Send + Sync>>,
    unsubscribed: Option<Box<dyn Fn(&dyn ServerApi, &Client, &str) + Send + Sync>>,
    error: Option<Box<dyn Fn(&dyn ServerApi, Option<&Client>, &ServerError) + Send + Sync>>,
}

impl Callbacks {
    /// No callbacks.
    pub fn new() -> Callbacks {
        Callbacks::default()
    }

    /// Decide on upgrade requests (default: accept).
    pub fn on_handshake(
        mut self,
        f: impl Fn(&Request, SocketAddr) -> Decision + Send + Sync + 'static,
    ) -> Self {
        self.handshake = Some(Box::new(f));
        self
    }

    /// Answer plain HTTP requests (default: 426).
    pub fn on_http(mut self, f: impl Fn(&Request) -> HttpResponse + Send + Sync + 'static) -> Self {
        self.http = Some(Box::new(f));
        self
    }

    /// A client connected (Python: `set_fn_new_client`).
    pub fn on_new_client(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client) + Send + Sync + 'static,
    ) -> Self {
        self.new_client = Some(Box::new(move |api, c, ()| f(api, c)));
        self
    }

    /// A client left, with the close code and reason (Python: `set_fn_client_left`).
    pub fn on_client_left(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, &Closed) + Send + Sync + 'static,
    ) -> Self {
        self.left = Some(Box::new(f));
        self
    }

    /// A message arrived (Python: `set_fn_message_received`).
    pub fn on_message(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, Message) + Send + Sync + 'static,
    ) -> Self {
        self.message = Some(Box::new(f));
        self
    }

    /// A ping arrived.
    pub fn on_ping(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, &[u8]) + Send + Sync + 'static,
    ) -> Self {
        self.ping = Some(Box::new(f));
        self
    }

    /// A pong arrived.
    pub fn on_pong(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, &[u8]) + Send + Sync + 'static,
    ) -> Self {
        self.pong = Some(Box::new(f));
        self
    }

    /// A client was subscribed to a service.
    pub fn on_subscribed(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, &str) + Send + Sync + 'static,
    ) -> Self {
        self.subscribed = Some(Box::new(f));
        self
    }

    /// A client was unsubscribed from a service.
    pub fn on_unsubscribed(
        mut self,
        f: impl Fn(&dyn ServerApi, &Client, &str) + Send + Sync + 'static,
    ) -> Self {
        self.unsubscribed = Some(Box::new(f));
        self
    }

    /// An error occurred.
    pub fn on_error(
        mut self,
        f: impl Fn(&dyn ServerApi, Option<&Client>, &ServerError) + Send + Sync + 'static,
    ) -> Self {
        self.error = Some(Box::new(f));
        self
    }
}

impl Handler for Callbacks {
    fn on_handshake(&self, request: &Request, peer: SocketAddr) -> Decision {
        match &self.handshake {
            Some(f) => f(request, peer),
            None => Decision::Accept(Accept::default()),
        }
    }
    fn on_http(&self, request: &Request) -> HttpResponse {
        match &self.http {
            Some(f) => f(request),
            None => HttpResponse::upgrade_required(),
        }
    }
    fn on_new_client(&self, api: &dyn ServerApi, client: &Client) {
        if let Some(f) = &self.new_client {
            f(api, client, ());
        }
    }
    fn on_client_left(&self, api: &dyn ServerApi, client: &Client, closed: &Closed) {
        if let Some(f) = &self.left {
            f(api, client, closed);
        }
    }
    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
        if let Some(f) = &self.message {
            f(api, client, message);
        }
    }
    fn on_message_ref(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
        // No copy for a callback that is not set.
        if let Some(f) = &self.message {
            f(api, client, message.to_message());
        }
    }
    fn on_ping(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        if let Some(f) = &self.ping {
            f(api, client, payload);
        }
    }
    fn on_pong(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        if let Some(f) = &self.pong {
            f(api, client, payload);
        }
    }
    fn on_subscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        if let Some(f) = &self.subscribed {
            f(api, client, service);
        }
    }
    fn on_unsubscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        if let Some(f) = &self.unsubscribed {
            f(api, client, service);
        }
    }
    fn on_error(&self, api: &dyn ServerApi, client: Option<&Client>, error: &ServerError) {
        if let Some(f) = &self.error {
            f(api, client, error);
        }
    }
}
