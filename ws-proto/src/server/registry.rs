//! Who is connected, and who is subscribed to what.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{Client, ClientId};

/// The client list and the subscriptions to named services. Adapters keep it behind a mutex so
/// that any thread can list clients or publish.
#[derive(Debug, Default)]
pub struct Registry {
    /// The same `Client` the session holds, shared rather than copied.
    clients: HashMap<ClientId, (Arc<Client>, BTreeSet<String>)>,
    services: HashMap<String, BTreeSet<ClientId>>,
}

impl Registry {
    /// Adds a client that completed its handshake.
    pub fn insert(&mut self, client: Arc<Client>) {
        self.clients.insert(client.id, (client, BTreeSet::new()));
    }

    /// Removes a client and its subscriptions; returns the services it was subscribed to.
    pub fn remove(&mut self, id: ClientId) -> Vec<String> {
        let Some((_, subs)) = self.clients.remove(&id) else {
            return Vec::new();
        };
        for s in &subs {
            if let Some(set) = self.services.get_mut(s) {
                set.remove(&id);
                if set.is_empty() {
                    self.services.remove(s);
                }
            }
        }
        subs.into_iter().collect()
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// No clients.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether `id` is connected.
    pub fn contains(&self, id: ClientId) -> bool {
        self.clients.contains_key(&id)
    }

    /// All clients, ordered by id.
    pub fn clients(&self) -> Vec<Client> {
        let mut v: Vec<Client> = self
            .clients
            .values()
            .map(|(c, _)| Client::clone(c))
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Ids of all clients.
    pub fn ids(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// Subscribes; returns the client if it was not subscribed yet (so the callback fires once).
    pub fn subscribe(&mut self, id: ClientId, service: &str) -> Option<Client> {
        let (client, subs) = self.clients.get_mut(&id)?;
        if !subs.insert(service.to_owned()) {
            return None;
        }
        self.services
            .entry(service.to_owned())
            .or_default()
            .insert(id);
        Some(Client::clone(client))
    }

    /// Unsubscribes; returns the client if it was subscribed.
    pub fn unsubscribe(&mut self, id: ClientId, service: &str) -> Option<Client> {
        let (client, subs) = self.clients.get_mut(&id)?;
        if !subs.remove(service) {
            return None;
        }
        if let Some(set) = self.services.get_mut(service) {
            set.remove(&id);
            if set.is_empty() {
                self.services.remove(service);
            }
        }
        Some(Client::clone(client))
    }

    /// Subscribers of `service`.
    pub fn subscribers(&self, service: &str) -> Vec<ClientId> {
        self.services
            .get(service)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Services `id` is subscribed to.
    pub fn subscriptions(&self, id: ClientId) -> Vec<String> {
        self.clients
            .get(&id)
            .map(|(_, s)| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
