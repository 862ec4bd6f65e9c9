//! Keys with one deadline each, in the order they fall due: a gateway's grace, a
//! supervised device's interval. Setting, clearing and taking what is due are each a
//! step in a B-tree: nothing is scanned, however many keys there are.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::Timestamp;

#[derive(Debug)]
pub struct Deadlines<K: Ord + Clone> {
    at: BTreeMap<K, Timestamp>,
    order: BTreeSet<(Timestamp, K)>,
}

impl<K: Ord + Clone> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines { at: BTreeMap::new(), order: BTreeSet::new() }
    }
}

impl<K: Ord + Clone> Deadlines<K> {
    /// `key` falls due at `at` (instead of when it did before).
    pub fn set(&mut self, key: K, at: Timestamp) {
        if let Some(old) = self.at.insert(key.clone(), at) {
            self.order.remove(&(old, key.clone()));
        }
        self.order.insert((at, key));
    }

    /// `key` no longer falls due; whether it had a deadline.
    pub fn clear(&mut self, key: &K) -> bool {
        match self.at.remove(key) {
            Some(at) => self.order.remove(&(at, key.clone())),
            None => false,
        }
    }

    pub fn clear_all(&mut self) {
        self.at.clear();
        self.order.clear();
    }

    /// When the next key falls due.
    pub fn next(&self) -> Option<Timestamp> {
        self.order.first().map(|(at, _)| *at)
    }

    /// The keys due at `now`, in the order they fell due; they have no deadline any more.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<K> {
        let mut due = Vec::new();
        while self.order.first().is_some_and(|(at, _)| *at <= now) {
            let (_, key) = self.order.pop_first().expect("just seen");
            self.at.remove(&key);
            due.push(key);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fall_due_once_in_order_and_a_new_deadline_replaces_the_old() {
        let t = Timestamp::from_secs;
        let mut d = Deadlines::default();
        d.set("a", t(30));
        d.set("b", t(10));
        d.set("c", t(20));
        d.set("a", t(5));
        assert!(d.clear(&"c") && !d.clear(&"c"));
        assert_eq!(d.next(), Some(t(5)));
        assert_eq!(d.take_due(t(10)), ["a", "b"]);
        assert!(d.take_due(t(100)).is_empty(), "each once; a's old deadline is gone");
        assert_eq!(d.next(), None);
    }
}
