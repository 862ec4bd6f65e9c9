//! Gateways' statuses (kept, counted, logged), and a home's base unit that stays offline:
//! its resident's `connection_lost` alarm.

use tracing::{info, warn};

use super::Driver;
use crate::core::{Input, RejectReason, Timestamp};
use crate::live::errors::ErrorCode;
use crate::live::gateways::{self, Gateways};
use crate::live::wire::{self, WireReject, refused_on_panic};

impl Driver {
    /// A gateway's status (`rest`: the topic after [`gateways::PREFIX`]): kept, counted
    /// and logged; refused with a reason as any message is. The status is not stored
    /// (the broker's retained message is the record). A home's base unit going offline
    /// is its resident's `connection_lost` alarm, which the engine takes as any alarm.
    pub(super) fn on_gateway(&mut self, now: Timestamp, topic: &str, rest: &str, payload: &[u8]) {
        let parsed = refused_on_panic(topic, || match rest.split_once('/') {
            Some((m, g)) => wire::parse_gateway(m, g, payload, now, &self.config.limits),
            None => Err(WireReject {
                code: ErrorCode::BadTopic,
                detail: format!("a gateway's status goes on vakt/v1/gateways/{{municipality}}/{{gateway_id}}, not {topic:?}"),
            }),
        });
        let known = parsed.and_then(|r| match self.engine.config().municipality_index(&r.municipality) {
            Some(_) => Ok(r),
            None => Err(WireReject {
                code: ErrorCode::from(&RejectReason::UnknownMunicipality),
                detail: format!("no municipality {} is configured", r.municipality),
            }),
        });
        let r = match known {
            Ok(r) => r,
            Err(reject) => return self.refuse(now, topic, payload, reject),
        };
        let (municipality, gateway) = (r.municipality.as_str(), r.gateway.as_str());
        let lost = self.gateways.get(&r.municipality, &r.gateway).filter(|s| !s.online).and_then(|s| s.base_unit.clone());
        let change = self.gateways.report(&r, now);
        match change {
            gateways::Change::WentOffline => warn!(municipality, gateway, "gateway offline: alarms sent through it cannot reach vakt until it is back"),
            gateways::Change::CameBack => info!(municipality, gateway, "gateway online again"),
            gateways::Change::Appeared => info!(municipality, gateway, "gateway online"),
            gateways::Change::Forgotten => info!(municipality, gateway, "gateway taken out of service (its status cleared)"),
            gateways::Change::Unchanged => {}
        }
        let (online, offline) = self.gateways.counts(&r.municipality);
        self.metrics.gateways.with_label_values(&[municipality, "online"]).set(online);
        self.metrics.gateways.with_label_values(&[municipality, "offline"]).set(offline);
        self.on_base_unit(now, topic, payload, change, r, lost);
    }

    /// What a base unit's status (`r`, which made `change`) means for its resident:
    /// - offline: held for the grace, then the `connection_lost` alarm. vakt learns it
    ///   from the will, or at vakt's start from the retained status (the same alarm id
    ///   then: a redelivery, see `GatewayReport::connection_lost`);
    /// - back online after its alarm (`lost`: the connection that was lost): a note on
    ///   that alarm's incident, if it is still open, so that whoever has it knows alarms
    ///   can come through again.
    pub(super) fn on_base_unit(
        &mut self,
        now: Timestamp,
        topic: &str,
        payload: &[u8],
        change: gateways::Change,
        r: wire::GatewayReport,
        lost: Option<wire::BaseUnit>,
    ) {
        match (change, lost) {
            (gateways::Change::WentOffline, _) if r.base_unit.is_some() => {
                if self.config.base_unit_grace.is_zero() {
                    self.raise_connection_lost(now, &r, now);
                } else {
                    self.gateways.hold(r, now, now + self.config.base_unit_grace);
                }
            }
            (gateways::Change::CameBack, Some(lost)) => {
                let alarm = wire::connection_lost_id(&lost);
                let open = self.contexts.iter().find(|(_, c)| c.alarm == alarm && c.resident == lost.resident).map(|(id, _)| *id);
                if let Some(incident) = open {
                    let note = format!("Base unit {} is back online: alarms can come through it again", r.gateway);
                    self.take_input(now, topic, payload, Input::SystemNote { incident, note });
                }
            }
            _ => {}
        }
    }

    /// A base unit's `connection_lost` alarm for its resident, taken as any alarm is.
    pub(super) fn raise_connection_lost(&mut self, now: Timestamp, r: &wire::GatewayReport, since: Timestamp) {
        if self.failed {
            return;
        }
        if let Some(alarm) = r.connection_lost(since) {
            info!(municipality = %r.municipality, gateway = %r.gateway, alarm_id = %alarm.id, "a base unit is still offline: its resident's connection_lost alarm goes to the engine");
            let topic = format!("{}{}/{}", gateways::PREFIX, r.municipality, r.gateway);
            self.take_input(now, &topic, &[], Input::Alarm(alarm));
        }
    }

    /// Every gateway known, with its latest status.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }
}
