//! Whether each gateway is online, by its own word on
//! `vakt/v1/gateways/{municipality}/{gateway_id}`: a retained `online` when it connects,
//! and its last will, a retained `offline`, which the broker publishes when the
//! gateway's connection dies without a goodbye (power or network gone, or silent past
//! its keep-alive).
//!
//! A gateway (an alarm receiver, a home's base unit) that goes silent makes its
//! residents' alarms stop coming, and nothing else notices: no alarm is refused, none
//! arrives. So vakt keeps each gateway's latest status, counts those online and offline
//! per municipality (`vakt_gateways`), logs every change (offline as a warning), and
//! shows operators the gateways that are offline (`/api/gateways`, the dashboard).
//!
//! Not stored: the broker's retained messages are the record. vakt subscribes afresh at
//! every start, and the broker then sends each gateway's latest status again.
//!
//! A home's base unit that goes offline is also its resident's `connection_lost` alarm
//! (see `wire::GatewayReport::connection_lost`), held here for a grace period first: a
//! unit back online within it raises none.

use std::collections::BTreeMap;

use crate::core::{GatewayId, MunicipalityId, Timestamp};

use super::deadlines::Deadlines;

use super::wire::{BaseUnit, GatewayReport};

/// The topics' common start, `vakt/v1/gateways/`.
pub const PREFIX: &str = "vakt/v1/gateways/";

/// A gateway's latest status, and since when vakt has known it (a status the broker
/// kept from before vakt started is known from vakt's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub online: bool,
    pub since: Timestamp,
    /// A home's base unit: the resident it serves, and when its connection began.
    pub base_unit: Option<BaseUnit>,
    /// An operator has seen to it being offline: off the dashboards' list until its
    /// status changes (not kept across a restart of vakt: it shows again then).
    pub acknowledged: bool,
}

/// What a report changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A gateway not known before, online.
    Appeared,
    /// Offline now (or first heard of as offline).
    WentOffline,
    /// Online again after being offline.
    CameBack,
    /// Its status cleared: taken out of service.
    Forgotten,
    /// Nothing (the same status again, or a clear for a gateway not known).
    Unchanged,
}

#[derive(Debug, Default)]
pub struct Gateways {
    by_id: BTreeMap<(MunicipalityId, GatewayId), Status>,
    /// Per municipality: how many online, how many offline (kept as reports come: a
    /// home's base unit may be a gateway, so there may be thousands).
    counts: BTreeMap<MunicipalityId, (i64, i64)>,
    /// Base units offline whose alarm waits out the grace: since when the unit is known
    /// offline, and its report; and when each is due (a network outage may take
    /// thousands of units offline at once, and the driver asks for the next one at every
    /// message).
    held: BTreeMap<Key, (Timestamp, GatewayReport)>,
    held_due: Deadlines<Key>,
}

type Key = (MunicipalityId, GatewayId);

fn key(r: &GatewayReport) -> Key {
    (r.municipality.clone(), r.gateway.clone())
}

impl Gateways {
    pub fn report(&mut self, r: &GatewayReport, now: Timestamp) -> Change {
        let id = key(r);
        let before = self.by_id.get(&id).map(|s| s.online);
        let change = match (r.online, before) {
            (None, None) => Change::Unchanged,
            (None, Some(_)) => {
                self.by_id.remove(&id);
                Change::Forgotten
            }
            (Some(online), Some(was)) if online == was => Change::Unchanged,
            (Some(online), _) => {
                self.by_id.insert(id, Status { online, since: now, base_unit: r.base_unit.clone(), acknowledged: false });
                match (online, before) {
                    (false, _) => Change::WentOffline,
                    (true, None) => Change::Appeared,
                    (true, Some(_)) => Change::CameBack,
                }
            }
        };
        if matches!(change, Change::CameBack | Change::Forgotten) {
            self.release(&key(r));
        }
        if change != Change::Unchanged {
            let n = self.counts.entry(r.municipality.clone()).or_default();
            let count = |n: &mut (i64, i64), online: bool, by: i64| if online { n.0 += by } else { n.1 += by };
            if let Some(was) = before {
                count(n, was, -1);
            }
            if let Some(online) = r.online {
                count(n, online, 1);
            }
        }
        change
    }

    /// A gateway's latest status.
    pub fn get(&self, municipality: &MunicipalityId, gateway: &GatewayId) -> Option<&Status> {
        self.by_id.get(&(municipality.clone(), gateway.clone()))
    }

    /// Takes an offline gateway off the dashboards' list until its status changes;
    /// whether there was such a one.
    pub fn acknowledge(&mut self, municipality: &MunicipalityId, gateway: &GatewayId) -> bool {
        match self.by_id.get_mut(&(municipality.clone(), gateway.clone())) {
            Some(s) if !s.online && !s.acknowledged => {
                s.acknowledged = true;
                true
            }
            _ => false,
        }
    }

    /// How many of `municipality`'s gateways are online, and how many offline.
    pub fn counts(&self, municipality: &MunicipalityId) -> (i64, i64) {
        self.counts.get(municipality).copied().unwrap_or_default()
    }

    /// Holds a base unit's `offline` (known since `since`) until `due`: unless the unit
    /// is back online or out of service before, [`Gateways::take_due`] gives it then.
    pub fn hold(&mut self, r: GatewayReport, since: Timestamp, due: Timestamp) {
        let id = key(&r);
        self.held_due.set(id.clone(), due);
        self.held.insert(id, (since, r));
    }

    fn release(&mut self, key: &Key) {
        self.held.remove(key);
        self.held_due.clear(key);
    }

    /// When the next held `offline` is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.held_due.next()
    }

    /// The held `offline`s due at `now` (each with since when its unit is offline), no
    /// longer held.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<(GatewayReport, Timestamp)> {
        self.held_due.take_due(now).into_iter().filter_map(|key| self.held.remove(&key)).map(|(since, r)| (r, since)).collect()
    }

    /// Every gateway known, by municipality and id.
    pub fn iter(&self) -> impl Iterator<Item = (&MunicipalityId, &GatewayId, &Status)> {
        self.by_id.iter().map(|((m, g), s)| (m, g, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(m: &str, g: &str, online: Option<bool>) -> GatewayReport {
        GatewayReport { municipality: MunicipalityId::parse(m).unwrap(), gateway: GatewayId::parse(g).unwrap(), online, base_unit: None }
    }

    #[test]
    fn a_held_offline_is_given_when_due_unless_the_unit_came_back() {
        let mut gws = Gateways::default();
        let t = Timestamp::from_secs;
        for g in ["bu-1", "bu-2", "bu-3"] {
            gws.report(&report("luster", g, Some(false)), t(10));
            gws.hold(report("luster", g, Some(false)), t(10), t(if g == "bu-3" { 20 } else { 310 }));
        }
        assert_eq!(gws.next_due(), Some(t(20)));
        // Held again (its offline given twice): one entry, the later due time.
        gws.hold(report("luster", "bu-1", Some(false)), t(10), t(320));
        assert!(gws.take_due(t(19)).is_empty());
        let due = gws.take_due(t(20));
        assert_eq!(due.iter().map(|(r, since)| (r.gateway.as_str(), *since)).collect::<Vec<_>>(), [("bu-3", t(10))]);
        assert!(gws.take_due(t(20)).is_empty(), "given once");
        // bu-1 is back, bu-2 taken out of service: neither is given.
        assert_eq!(gws.report(&report("luster", "bu-1", Some(true)), t(60)), Change::CameBack);
        assert_eq!(gws.report(&report("luster", "bu-2", None), t(60)), Change::Forgotten);
        assert_eq!(gws.next_due(), None);
        assert!(gws.take_due(t(400)).is_empty());
        assert!(gws.held.is_empty() && gws.held_due.next().is_none());
    }

    #[test]
    fn a_gateway_is_followed_through_offline_back_and_out_of_service() {
        let mut gws = Gateways::default();
        let (t0, t1, t2) = (Timestamp::from_secs(10), Timestamp::from_secs(20), Timestamp::from_secs(30));
        let sogndal = MunicipalityId::parse("sogndal").unwrap();
        assert_eq!(gws.report(&report("sogndal", "gw-1", Some(true)), t0), Change::Appeared);
        assert_eq!(gws.report(&report("sogndal", "gw-2", Some(true)), t0), Change::Appeared);
        assert_eq!(gws.report(&report("luster", "gw-1", Some(false)), t0), Change::WentOffline, "first heard of as offline");
        assert_eq!(gws.report(&report("sogndal", "gw-1", Some(true)), t1), Change::Unchanged);
        assert_eq!(gws.counts(&sogndal), (2, 0));
        assert_eq!(gws.report(&report("sogndal", "gw-1", Some(false)), t1), Change::WentOffline);
        assert_eq!(gws.counts(&sogndal), (1, 1));
        let (_, _, s) = gws.iter().find(|(m, g, _)| *m == &sogndal && g.as_str() == "gw-1").unwrap();
        assert_eq!(*s, Status { online: false, since: t1, base_unit: None, acknowledged: false });
        assert!(gws.acknowledge(&sogndal, &GatewayId::parse("gw-1").unwrap()), "offline: seen to");
        assert!(!gws.acknowledge(&sogndal, &GatewayId::parse("gw-1").unwrap()), "once");
        assert!(!gws.acknowledge(&sogndal, &GatewayId::parse("gw-2").unwrap()), "online: nothing to see to");
        assert_eq!(gws.report(&report("sogndal", "gw-1", Some(false)), t2), Change::Unchanged, "a repeat keeps its time");
        assert_eq!(gws.iter().find(|(_, g, s)| g.as_str() == "gw-1" && !s.online && s.since == t1).map(|(m, ..)| m.as_str()), Some("sogndal"));
        assert_eq!(gws.report(&report("sogndal", "gw-1", Some(true)), t2), Change::CameBack);
        assert_eq!(gws.report(&report("sogndal", "gw-2", None), t2), Change::Forgotten);
        assert_eq!(gws.report(&report("sogndal", "gw-2", None), t2), Change::Unchanged);
        assert_eq!(gws.counts(&sogndal), (1, 0));
        assert_eq!(gws.counts(&MunicipalityId::parse("luster").unwrap()), (0, 1));
        assert_eq!(gws.iter().count(), 2);
        for m in [&sogndal, &MunicipalityId::parse("luster").unwrap()] {
            let recount = gws.iter().filter(|(g, ..)| *g == m).fold((0, 0), |n, (_, _, s)| if s.online { (n.0 + 1, n.1) } else { (n.0, n.1 + 1) });
            assert_eq!(gws.counts(m), recount, "{m}");
        }
    }
}
