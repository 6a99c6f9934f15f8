//! The chat application: a `Handler` written only against the API both servers share, so the
//! same code runs on ws-mio and ws-std.
//!
//! Browser → server, one command per text message: `name:<name>`, `join:<room>`, `msg:<text>`.
//! Server → browser, JSON objects: `{"type":"system","text":..}`, `{"type":"chat","from":..,
//! "room":..,"text":..}`, `{"type":"online","count":..}`. Rooms are subscriptions to the service
//! `room:<name>`; a message to a room is a publish.

use std::collections::HashMap;
use std::sync::Mutex;

use ws_proto::server::{Client, ClientId, Handler, HttpResponse, ServerApi};
use ws_proto::{Closed, Message, Request};

const PAGE: &str = include_str!("index.html");
const MAX_NAME: usize = 32;

#[derive(Default)]
pub struct Chat {
    users: Mutex<HashMap<ClientId, User>>,
}

#[derive(Clone, Default)]
struct User {
    name: String,
    room: Option<String>,
}

/// Minimal JSON string escaping (the page parses what we send with JSON.parse).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn system(text: &str) -> Message {
    Message::Text(format!(r#"{{"type":"system","text":{}}}"#, json_str(text)))
}

fn service(room: &str) -> String {
    format!("room:{room}")
}

impl Chat {
    fn user(&self, id: ClientId) -> User {
        self.users
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    fn online(&self, api: &dyn ServerApi) {
        let count = self.users.lock().unwrap().len();
        api.send_to_all(Message::Text(format!(
            r#"{{"type":"online","count":{count}}}"#
        )));
    }
}

impl Handler for Chat {
    fn on_http(&self, request: &Request) -> HttpResponse {
        match request.path.split('?').next() {
            Some("/") | Some("/index.html") => {
                HttpResponse::new(200, "text/html; charset=utf-8", PAGE)
            }
            _ => HttpResponse::new(404, "text/plain", "not found\n"),
        }
    }

    fn on_new_client(&self, api: &dyn ServerApi, client: &Client) {
        let name = format!("guest-{}", client.id.slot());
        self.users.lock().unwrap().insert(
            client.id,
            User {
                name: name.clone(),
                room: None,
            },
        );
        api.send(
            client.id,
            system(&format!("welcome, {name}: pick a name and join a room")),
        );
        self.online(api);
    }

    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
        let Message::Text(text) = message else { return };
        let (cmd, arg) = text.split_once(':').unwrap_or((text.as_str(), ""));
        let arg = arg.trim();
        match cmd {
            "name" if !arg.is_empty() => {
                let name: String = arg.chars().take(MAX_NAME).collect();
                if let Some(u) = self.users.lock().unwrap().get_mut(&client.id) {
                    u.name = name.clone();
                }
                api.send(client.id, system(&format!("you are now {name}")));
            }
            "join" if !arg.is_empty() => {
                let room: String = arg.chars().take(MAX_NAME).collect();
                let old = self.user(client.id).room;
                if old.as_deref() == Some(room.as_str()) {
                    return;
                }
                if let Some(old) = old {
                    api.unsubscribe(client.id, &service(&old));
                }
                if let Some(u) = self.users.lock().unwrap().get_mut(&client.id) {
                    u.room = Some(room.clone());
                }
                api.subscribe(client.id, &service(&room));
            }
            "msg" => {
                let user = self.user(client.id);
                let Some(room) = user.room else {
                    api.send(client.id, system("join a room first"));
                    return;
                };
                let json = format!(
                    r#"{{"type":"chat","from":{},"room":{},"text":{}}}"#,
                    json_str(&user.name),
                    json_str(&room),
                    json_str(arg)
                );
                api.publish(&service(&room), Message::Text(json));
            }
            _ => api.send(client.id, system("unknown command")),
        }
    }

    fn on_subscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        let room = service.trim_start_matches("room:");
        let name = self.user(client.id).name;
        api.publish(service, system(&format!("{name} joined {room}")));
    }

    fn on_unsubscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        let room = service.trim_start_matches("room:");
        let name = self.user(client.id).name;
        api.publish(service, system(&format!("{name} left {room}")));
    }

    fn on_client_left(&self, api: &dyn ServerApi, client: &Client, _closed: &Closed) {
        self.users.lock().unwrap().remove(&client.id);
        self.online(api);
    }
}
