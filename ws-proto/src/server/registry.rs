//! Who is connected, and who is subscribed to what.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{Client, ClientId};

/// The client list and the subscriptions to named services. Adapters keep it behind a mutex so
/// that any thread can list clients or publish.
#[derive(Debug, Default)]
pub struct Registry {
    /// The same `Client` the session holds, shared rather than copied, indexed by slot: slots
    /// are dense, so this is the smallest map there is (8 bytes a client), and it costs every
    /// idle connection of a big server.
    clients: Vec<Option<Arc<Client>>>,
    len: usize,
    /// Services of each client subscribed to any.
    subscriptions: HashMap<ClientId, BTreeSet<String>>,
    services: HashMap<String, BTreeSet<ClientId>>,
}

impl Registry {
    fn get(&self, id: ClientId) -> Option<&Arc<Client>> {
        self.clients
            .get(id.slot())
            .and_then(Option::as_ref)
            .filter(|c| c.id == id)
    }

    /// Adds a client that completed its handshake.
    pub fn insert(&mut self, client: Arc<Client>) {
        let slot = client.id.slot();
        if slot >= self.clients.len() {
            self.clients.resize_with(slot + 1, || None);
        }
        if self.clients[slot].replace(client).is_none() {
            self.len += 1;
        }
    }

    /// Removes a client and its subscriptions; returns the services it was subscribed to.
    pub fn remove(&mut self, id: ClientId) -> Vec<String> {
        if self.get(id).is_none() {
            return Vec::new();
        }
        self.clients[id.slot()] = None;
        self.len -= 1;
        let Some(subs) = self.subscriptions.remove(&id) else {
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
        self.len
    }

    /// No clients.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `id` is connected.
    pub fn contains(&self, id: ClientId) -> bool {
        self.get(id).is_some()
    }

    /// All clients, ordered by id.
    pub fn clients(&self) -> Vec<Client> {
        // Slot order is id order: ids compare by slot first.
        self.clients
            .iter()
            .flatten()
            .map(|c| Client::clone(c))
            .collect()
    }

    /// Ids of all clients.
    pub fn ids(&self) -> Vec<ClientId> {
        self.clients.iter().flatten().map(|c| c.id).collect()
    }

    /// Subscribes; returns the client if it was not subscribed yet (so the callback fires once).
    pub fn subscribe(&mut self, id: ClientId, service: &str) -> Option<Client> {
        let client = Client::clone(self.get(id)?);
        let subs = self.subscriptions.entry(id).or_default();
        if !subs.insert(service.to_owned()) {
            return None;
        }
        self.services
            .entry(service.to_owned())
            .or_default()
            .insert(id);
        Some(client)
    }

    /// Unsubscribes; returns the client if it was subscribed.
    pub fn unsubscribe(&mut self, id: ClientId, service: &str) -> Option<Client> {
        let client = Arc::clone(self.get(id)?);
        let subs = self.subscriptions.get_mut(&id)?;
        if !subs.remove(service) {
            return None;
        }
        if subs.is_empty() {
            self.subscriptions.remove(&id);
        }
        if let Some(set) = self.services.get_mut(service) {
            set.remove(&id);
            if set.is_empty() {
                self.services.remove(service);
            }
        }
        Some(Client::clone(&client))
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
        self.subscriptions
            .get(&id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Slab;

    fn client(id: ClientId) -> Arc<Client> {
        Arc::new(Client {
            id,
            addr: "127.0.0.1:1".parse().unwrap(),
            path: "/".into(),
            protocol: None,
        })
    }

    #[test]
    fn a_stale_id_never_reaches_the_client_that_reuses_its_slot() {
        let mut ids = Slab::default();
        let mut r = Registry::default();
        let a = ids.insert(());
        let b = ids.insert(());
        r.insert(client(a));
        r.insert(client(b));
        assert!(r.subscribe(a, "news").is_some());
        assert!(r.subscribe(a, "news").is_none(), "subscribed once");
        assert_eq!(r.remove(a), vec!["news".to_string()]);
        ids.remove(a);
        let c = ids.insert(());
        assert_eq!(c.slot(), a.slot());
        r.insert(client(c));
        assert!(!r.contains(a) && r.contains(c) && r.contains(b));
        assert!(r.subscribe(a, "news").is_none());
        assert!(r.subscribers("news").is_empty());
        assert!(
            r.subscriptions(c).is_empty(),
            "c does not inherit a's subscriptions"
        );
        assert_eq!(r.remove(a), Vec::<String>::new());
        assert_eq!(r.len(), 2);
        let listed: Vec<ClientId> = r.clients().iter().map(|x| x.id).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        assert_eq!(r.ids().len(), 2);
        assert!(r.subscribe(c, "x").is_some() && r.unsubscribe(c, "x").is_some());
        assert!(r.unsubscribe(c, "x").is_none());
    }
}
