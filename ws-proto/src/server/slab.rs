//! Generation-checked slots: an id stays unique while its holder lives, and a stale id (of a
//! client that left) never reaches the client that reuses the slot.

use std::fmt;

/// A client's id: a slot plus the slot's generation when the client took it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    slot: u32,
    generation: u32,
}

impl ClientId {
    /// The slot (adapters use it as an event-loop token).
    pub fn slot(self) -> usize {
        self.slot as usize
    }

    /// A single number for logs and JSON (generation in the high bits).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab keyed by [`ClientId`].
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`, returning its new id.
    pub fn insert(&mut self, value: T) -> ClientId {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let e = &mut self.entries[slot as usize];
            e.value = Some(value);
            return ClientId {
                slot,
                generation: e.generation,
            };
        }
        let slot = u32::try_from(self.entries.len()).expect("fewer than 2^32 clients");
        self.entries.push(Entry {
            generation: 0,
            value: Some(value),
        });
        ClientId {
            slot,
            generation: 0,
        }
    }

    /// Stores the value made by `make` from its new id.
    pub fn insert_with(&mut self, make: impl FnOnce(ClientId) -> T) -> ClientId {
        let slot = match self.free.last() {
            Some(&slot) => slot,
            None => u32::try_from(self.entries.len()).expect("fewer than 2^32 clients"),
        };
        let generation = self.entries.get(slot as usize).map_or(0, |e| e.generation);
        let id = ClientId { slot, generation };
        let inserted = self.insert(make(id));
        debug_assert_eq!(inserted, id);
        inserted
    }

    /// The value for `id`, if that client is still here.
    pub fn get(&self, id: ClientId) -> Option<&T> {
        match self.entries.get(id.slot as usize) {
            Some(e) if e.generation == id.generation => e.value.as_ref(),
            _ => None,
        }
    }

    /// Mutable access for `id`.
    pub fn get_mut(&mut self, id: ClientId) -> Option<&mut T> {
        match self.entries.get_mut(id.slot as usize) {
            Some(e) if e.generation == id.generation => e.value.as_mut(),
            _ => None,
        }
    }

    /// The live value in `slot` with its id (for event-loop tokens).
    pub fn get_slot_mut(&mut self, slot: usize) -> Option<(ClientId, &mut T)> {
        let e = self.entries.get_mut(slot)?;
        let id = ClientId {
            slot: slot as u32,
            generation: e.generation,
        };
        e.value.as_mut().map(|v| (id, v))
    }

    /// Removes `id`; its slot is reused later under a new generation.
    pub fn remove(&mut self, id: ClientId) -> Option<T> {
        let e = self.entries.get_mut(id.slot as usize)?;
        if e.generation != id.generation {
            return None;
        }
        let v = e.value.take()?;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(id.slot);
        self.len -= 1;
        Some(v)
    }

    /// Number of live values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No live values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ids of all live values.
    pub fn ids(&self) -> Vec<ClientId> {
        self.iter().map(|(id, _)| id).collect()
    }

    /// Live values with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &T)> {
        self.entries.iter().enumerate().filter_map(|(slot, e)| {
            e.value.as_ref().map(|v| {
                (
                    ClientId {
                        slot: slot as u32,
                        generation: e.generation,
                    },
                    v,
                )
            })
        })
    }

    /// Live values with their ids, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ClientId, &mut T)> {
        self.entries.iter_mut().enumerate().filter_map(|(slot, e)| {
            let g = e.generation;
            e.value.as_mut().map(|v| {
                (
                    ClientId {
                        slot: slot as u32,
                        generation: g,
                    },
                    v,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_do_not_reach_the_slot_reuser() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.slot(), b.slot());
        assert_ne!(a, b);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
    }
}
