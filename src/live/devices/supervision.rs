//! Supervised devices that fall silent.
//!
//! A device with `heartbeat_secs` in the register must be heard (any message: a
//! heartbeat, a link test, an alarm) within that interval plus the grace; otherwise it
//! is silent, and its resident gets one `heartbeat_missed` alarm for the silence. Each
//! device has one deadline in an ordered set, moved when it is heard: nothing is
//! scanned, however many devices there are.
//!
//! When each device was last heard, and whether its silence has been raised, is stored
//! with the engine's batches (table `device_contact`), so a restart neither forgets a
//! silence nor raises it again. A raised silence, a return and a first contact are
//! stored at once; a device heard within its interval only every [`STORE_EVERY`] (a
//! write per heartbeat would be a commit per heartbeat, for a time that matters only on
//! the dashboard: after a start, deadlines count from the start). Supervision begins at a device's first message (a
//! device registered before it is installed is not silent), and vakt cannot hear a
//! device while it is down: after a start, every deadline is counted from the start at
//! the earliest.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::Timestamp;

use super::register::Register;
use crate::live::deadlines::Deadlines;

/// How stale a stored `last_heard` may be before a heartbeat stores it again.
pub const STORE_EVERY: Duration = Duration::from_secs(600);

/// A device's contact as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    pub last_heard: Timestamp,
    /// The silence that began then has had its alarm.
    pub silent_since: Option<Timestamp>,
}

/// What hearing a device changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// First heard, or heard again within its interval.
    Alive,
    /// Heard after its silence was raised (since then).
    Back { silent_since: Timestamp },
}

#[derive(Debug)]
pub struct Supervision {
    contacts: HashMap<String, Contact>,
    /// Each device's `last_heard` as last handed out to be stored.
    stored: HashMap<String, Timestamp>,
    due: Deadlines<String>,
    grace: Duration,
    /// Deadlines are counted from here at the earliest (vakt's start).
    started: Timestamp,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision { contacts: HashMap::new(), stored: HashMap::new(), due: Deadlines::default(), grace: Duration::ZERO, started: Timestamp::from_millis(0) }
    }
}

impl Supervision {
    /// From the stored contacts; `register` says who is supervised, and how often.
    pub fn new(contacts: HashMap<String, Contact>, register: &Register, grace: Duration, started: Timestamp) -> Supervision {
        let stored = contacts.iter().map(|(id, c)| (id.clone(), c.last_heard)).collect();
        let mut s = Supervision { contacts, stored, grace, started, due: Deadlines::default() };
        s.reschedule(register);
        s
    }

    /// The register changed: every deadline again (an import, rare).
    pub fn reschedule(&mut self, register: &Register) {
        self.due.clear_all();
        let due: Vec<(String, Timestamp)> = self
            .contacts
            .iter()
            .filter(|(_, c)| c.silent_since.is_none())
            .filter_map(|(id, c)| Some((id.clone(), c.last_heard.max(self.started) + register.get(id)?.heartbeat? + self.grace)))
            .collect();
        for (id, at) in due {
            self.due.set(id, at);
        }
    }

    /// `device` was heard at `now`: its new contact, to store if `Some` (see the module
    /// on what is stored when), and what changed.
    pub fn heard(&mut self, device: &str, heartbeat: Option<Duration>, now: Timestamp) -> (Option<Contact>, Heard) {
        let before = self.contacts.get(device).copied();
        let contact = Contact { last_heard: now, silent_since: None };
        self.contacts.insert(device.to_owned(), contact);
        match heartbeat {
            Some(every) => self.due.set(device.to_owned(), now + every + self.grace),
            None => {
                self.due.clear(&device.to_owned());
            }
        }
        let change = match before.and_then(|c| c.silent_since) {
            Some(silent_since) => Heard::Back { silent_since },
            None => Heard::Alive,
        };
        let stale = self.stored.get(device).is_none_or(|at| now.since(*at) >= STORE_EVERY);
        let store = (stale || change != Heard::Alive).then(|| {
            self.stored.insert(device.to_owned(), now);
            contact
        });
        (store, change)
    }

    pub fn next_due(&self) -> Option<Timestamp> {
        self.due.next()
    }

    /// The devices silent at `now`, each with the contact to store (its silence marked
    /// raised): their alarms are the caller's to raise.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<(String, Contact)> {
        let mut silent = Vec::new();
        for id in self.due.take_due(now) {
            if let Some(c) = self.contacts.get_mut(&id) {
                c.silent_since = Some(c.last_heard);
                self.stored.insert(id.clone(), c.last_heard);
                silent.push((id, *c));
            }
        }
        silent
    }

    pub fn contact(&self, device: &str) -> Option<Contact> {
        self.contacts.get(device).copied()
    }

    /// How many supervised devices are silent now.
    pub fn silent_count(&self) -> usize {
        self.contacts.values().filter(|c| c.silent_since.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::devices::register::Device;

    #[test]
    fn a_silent_device_is_due_once_and_back_when_heard() {
        let t = Timestamp::from_secs;
        let register = Register::new([
            Device::new("a", "scaip", "1", "r-1", "", Some(60)).unwrap(),
            Device::new("b", "scaip", "2", "r-2", "", Some(600)).unwrap(),
            Device::new("c", "scaip", "3", "r-3", "", None).unwrap(),
        ]);
        let mut s = Supervision::new(HashMap::new(), &register, Duration::from_secs(30), t(0));
        assert_eq!(s.next_due(), None, "supervision begins at the first message");
        for (id, every) in [("a", 60), ("b", 600)] {
            s.heard(id, Some(Duration::from_secs(every)), t(10));
        }
        s.heard("c", None, t(10));
        assert_eq!(s.next_due(), Some(t(100)));
        s.heard("a", Some(Duration::from_secs(60)), t(50));
        assert!(s.take_due(t(100)).is_empty(), "heard in time");
        let due = s.take_due(t(140));
        assert_eq!(due, [("a".to_owned(), Contact { last_heard: t(50), silent_since: Some(t(50)) })]);
        assert!(s.take_due(t(10_000)).iter().all(|(id, _)| id == "b"), "a is raised once");
        let (stored, back) = s.heard("a", Some(Duration::from_secs(60)), t(20_000));
        assert_eq!((stored.map(|c| c.last_heard), back), (Some(t(20_000)), Heard::Back { silent_since: t(50) }), "a return is stored at once");
        assert_eq!(s.heard("a", Some(Duration::from_secs(60)), t(20_050)).0, None, "a heartbeat soon after is not");
        assert!(s.heard("a", Some(Duration::from_secs(60)), t(20_000) + STORE_EVERY).0.is_some(), "one STORE_EVERY later it is");

        // After a restart: a raised silence stays raised; the others count from the start.
        let contacts = HashMap::from([
            ("a".to_owned(), Contact { last_heard: t(50), silent_since: Some(t(50)) }),
            ("b".to_owned(), Contact { last_heard: t(10), silent_since: None }),
        ]);
        let mut s = Supervision::new(contacts, &register, Duration::from_secs(30), t(5_000));
        assert_eq!(s.next_due(), Some(t(5_630)));
        assert_eq!(s.take_due(t(6_000)).len(), 1);
        assert_eq!(s.silent_count(), 2);
    }
}
