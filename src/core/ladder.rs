//! The staff ladder (the mobile guard room, and home-care dispatch after an
//! operator's forward): nearest suitable staff first, one at a time; on decline or
//! timeout the next; after N offers or T seconds everyone on duty; the backup at its
//! deadline or at once when nobody is on duty; alerts while nobody has it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rstar::PointDistance;

use super::action::{Action, Responder, RevokeReason};
use super::config::Backup;
use super::engine::Engine;
use super::incident::{Dispatch, Incident, Stage};
use super::routing::Candidate;
use super::time::Timestamp;

impl Engine {
    /// Starts a ladder over `team`'s staff. `answering`: this ladder's accept stops the answer clock.
    pub(crate) fn start_dispatch(&mut self, inc: &mut Incident, now: Timestamp, answering: bool, team: usize) {
        // A team backup that is already this ladder's team (a centre's fallback to it) is no further step.
        let has_backup = match self.ladder_backup(inc, answering) {
            Some(Backup::Team(t)) => self.config.municipality_index(&t) != Some(team),
            Some(Backup::Centre(_)) => true,
            None => false,
        };
        inc.dispatch = Some(Dispatch {
            started_at: now,
            answering,
            pool: vec![team],
            live: BTreeMap::new(),
            tried: BTreeSet::new(),
            declined_broadcast: BTreeSet::new(),
            personal_offers: 0,
            broadcast: false,
            backup_done: !has_backup,
            retry_at: None,
            round_started: None,
        });
    }

    /// The backup the ladder may call on: the municipality's, where it applies. An
    /// operator's forward already came from a centre, so a centre backup does not
    /// apply there; a team backup does.
    fn ladder_backup(&self, inc: &Incident, answering: bool) -> Option<Backup> {
        match &self.config.municipalities[inc.muni].backup {
            Some(Backup::Centre(c)) if answering && inc.queue.is_none() => Some(Backup::Centre(c.clone())),
            Some(Backup::Team(t)) => Some(Backup::Team(t.clone())),
            _ => None,
        }
    }

    pub(crate) fn step_dispatch(&mut self, inc: &mut Incident, now: Timestamp) {
        let ladder = self.config.municipalities[inc.muni].ladder.clone();
        let d = inc.dispatch.as_mut().expect("step_dispatch needs a dispatch");

        // 1. Offers whose time is up are withdrawn.
        let expired: Vec<usize> = d.live.iter().filter(|(_, e)| e.is_some_and(|e| e <= now)).map(|(&s, _)| s).collect();
        for s in expired {
            d.live.remove(&s);
            self.staff[s].live_offers.retain(|&i| i != inc.id);
            self.push(Action::Revoked { at: now, incident: inc.id, staff: self.staff[s].info.id.clone(), reason: RevokeReason::Expired });
        }

        // 2. The backup: at its deadline, or at once when nobody in the pool is on duty.
        if !d.backup_done && (now >= d.started_at + ladder.backup_after || self.nobody_on_duty(d)) {
            d.backup_done = true;
            let answering = d.answering;
            if let Some(backup) = self.ladder_backup(inc, answering) {
                self.push(Action::ForwardedToBackup { at: now, incident: inc.id, backup: backup.clone() });
                match backup {
                    Backup::Centre(c) => {
                        let c = self.config.centre_index(&c).expect("validated");
                        self.enqueue(inc, c, now);
                        self.step_queue(inc, now);
                    }
                    Backup::Team(t) => {
                        let t = self.config.municipality_index(&t).expect("validated");
                        let d = inc.dispatch.as_mut().expect("still dispatching");
                        if !d.pool.contains(&t) {
                            d.pool.push(t);
                        }
                    }
                }
            }
        }

        // 3. Broadcast after enough personal offers or enough time.
        let d = inc.dispatch.as_mut().expect("still dispatching");
        if !d.broadcast && (d.personal_offers >= ladder.broadcast_after_offers || now >= d.started_at + ladder.broadcast_after) {
            d.broadcast = true;
            self.push(Action::Broadcast { at: now, incident: inc.id });
        }

        // 4. Offers: the next personal candidate, or everyone.
        let d = inc.dispatch.as_ref().expect("still dispatching");
        if !d.broadcast && d.live.is_empty() {
            match self.best_candidate(inc, ladder.skip_busy_staff, ladder.regular_helper_extra) {
                Some(c) => {
                    self.offer(inc, c, Some(now + ladder.offer_timeout), now);
                    inc.dispatch.as_mut().expect("offered above").personal_offers += 1;
                }
                None if !self.nobody_on_duty(d) => {
                    // Staff are on duty but none fits a personal offer (busy, or all tried): everyone.
                    inc.dispatch.as_mut().expect("still dispatching").broadcast = true;
                    self.push(Action::Broadcast { at: now, incident: inc.id });
                }
                None => {}
            }
        }
        let d = inc.dispatch.as_mut().expect("still dispatching");
        if d.broadcast {
            // A new round: nobody holds it, and the last round began `alert_repeat` ago.
            match d.round_started {
                None => d.round_started = Some(now),
                Some(r) if d.live.is_empty() && now >= r + ladder.alert_repeat => {
                    d.round_started = Some(now);
                    d.declined_broadcast.clear();
                }
                Some(_) => {}
            }
            self.offer_everyone(inc, now);
        }

        // 5. Nothing live: look again soon (logins also trigger a look); in the
        //    broadcast everyone on duty has been asked, so at the next round.
        let d = inc.dispatch.as_mut().expect("still dispatching");
        d.retry_at = d.live.is_empty().then(|| match (d.broadcast, d.round_started) {
            (true, Some(r)) if !d.declined_broadcast.is_empty() => (r + ladder.alert_repeat).max(now + ladder.retry_interval),
            _ => now + ladder.retry_interval,
        });
    }

    /// Nobody in any of the ladder's teams is on duty (the backup's "at once" case).
    fn nobody_on_duty(&self, d: &Dispatch) -> bool {
        d.pool.iter().all(|&t| self.teams[t].on_duty_count() == 0)
    }

    /// Eligible for an offer of this incident at all (any stage).
    fn eligible(&self, inc: &Incident, d: &Dispatch, s: usize) -> bool {
        let st = &self.staff[s];
        st.on_duty && st.info.roles.contains_all(inc.required_roles) && !d.live.contains_key(&s)
    }

    fn eta(&self, inc: &Incident, s: usize) -> Duration {
        let st = &self.staff[s];
        if st.team != inc.muni {
            if let Some(t) = self.config.driving_time(st.team, inc.muni) {
                return t;
            }
        }
        let team = &self.config.municipalities[st.team];
        team.travel.eta(st.position.unwrap_or(team.centre), inc.position)
    }

    /// The nearest eligible staff member not yet tried, or a regular helper who is
    /// at most `helper_extra` further away.
    pub(crate) fn best_candidate(&self, inc: &Incident, skip_busy: bool, helper_extra: Duration) -> Option<Candidate> {
        let d = inc.dispatch.as_ref()?;
        let fits = |s: usize| self.eligible(inc, d, s) && !d.tried.contains(&s) && !(skip_busy && self.staff[s].busy > 0);
        let target = inc.position.unit_vector();
        let mut best: Option<Candidate> = None;
        for &team in &d.pool {
            // Within a team the walk is in travel-time order: the first that fits is the
            // team's best, except that among equally near staff the lowest index wins
            // (the tree's order of equals depends on its history; a restored snapshot's
            // tree is built in another order and must choose the same).
            let mut walk = self.teams[team].on_duty.nearest_neighbor_iter(&target).filter(|p| fits(p.staff));
            let Some(first) = walk.next() else { continue };
            let nearest = first.distance_2(&target);
            let mut pick = first.staff;
            for p in walk {
                if p.distance_2(&target) > nearest {
                    break;
                }
                pick = pick.min(p.staff);
            }
            let c = Candidate { staff: pick, eta: self.eta(inc, pick) };
            if best.is_none_or(|b| c.beats(&b)) {
                best = Some(c);
            }
        }
        let best = best?;
        let mut helper: Option<Candidate> = None;
        if let Some(resident) = self.residents.get(&inc.resident) {
            for h in &resident.regular_helpers {
                let Some(&s) = self.staff_index.get(h) else { continue };
                if !fits(s) || !d.pool.contains(&self.staff[s].team) {
                    continue;
                }
                let c = Candidate { staff: s, eta: self.eta(inc, s) };
                if c.eta <= best.eta + helper_extra && helper.is_none_or(|h| c.beats(&h)) {
                    helper = Some(c);
                }
            }
        }
        Some(helper.unwrap_or(best))
    }

    /// An operator's choice: a personal offer to staff member `s`, with the usual expiry.
    pub(crate) fn offer_directed(&mut self, inc: &mut Incident, s: usize, now: Timestamp) {
        let timeout = self.config.municipalities[inc.muni].ladder.offer_timeout;
        let c = Candidate { staff: s, eta: self.eta(inc, s) };
        // Not one of the ladder's own tries: it does not count toward the broadcast.
        self.offer(inc, c, Some(now + timeout), now);
    }

    /// An operator's escalation: everyone on duty now, or a new round of it.
    pub(crate) fn escalate_now(&mut self, inc: &mut Incident, now: Timestamp) {
        let d = inc.dispatch.as_mut().expect("escalation needs a dispatch");
        if d.broadcast {
            d.declined_broadcast.clear();
            d.round_started = Some(now);
        } else {
            d.broadcast = true;
            self.push(Action::Broadcast { at: now, incident: inc.id });
        }
        self.offer_everyone(inc, now);
    }

    fn offer(&mut self, inc: &mut Incident, c: Candidate, expires_at: Option<Timestamp>, now: Timestamp) {
        let d = inc.dispatch.as_mut().expect("offers need a dispatch");
        d.live.insert(c.staff, expires_at);
        d.tried.insert(c.staff);
        self.staff[c.staff].live_offers.push(inc.id);
        self.push(Action::Offered { at: now, incident: inc.id, staff: self.staff[c.staff].info.id.clone(), eta: c.eta, expires_at });
    }

    /// Offers to everyone in the pool on duty with the right roles who holds no live
    /// offer and has not declined the broadcast, nearest first. Busy staff included:
    /// at this stage the question is who can take it at all.
    fn offer_everyone(&mut self, inc: &mut Incident, now: Timestamp) {
        let d = inc.dispatch.as_ref().expect("broadcast needs a dispatch");
        let mut everyone: Vec<Candidate> = d
            .pool
            .iter()
            .flat_map(|&t| self.teams[t].on_duty.iter())
            .filter(|p| self.eligible(inc, d, p.staff) && !d.declined_broadcast.contains(&p.staff))
            .map(|p| Candidate { staff: p.staff, eta: self.eta(inc, p.staff) })
            .collect();
        everyone.sort_by_key(|c| (c.eta, c.staff));
        for c in everyone {
            self.offer(inc, c, None, now);
        }
    }

    pub(crate) fn accept(&mut self, inc: &mut Incident, s: usize, now: Timestamp) {
        let d = inc.dispatch.take().expect("accept checked the live offer");
        let staff = self.staff[s].info.id.clone();
        if d.answering {
            self.mark_answered(inc, now, Responder::Staff(staff.clone()));
        }
        self.push(Action::Accepted { at: now, incident: inc.id, staff, since_dispatch: now.since(d.started_at) });
        for &other in d.live.keys() {
            self.staff[other].live_offers.retain(|&i| i != inc.id);
            if other != s {
                self.push(Action::Revoked { at: now, incident: inc.id, staff: self.staff[other].info.id.clone(), reason: RevokeReason::TakenByOther });
            }
        }
        self.dequeue(inc, now);
        inc.assigned = Some(s);
        inc.stage = Stage::Accepted;
        inc.alert_at = None;
        self.staff[s].busy += 1;
        // No ladder, queue or alert any more: this drops the incident's timer.
        self.advance(inc, now);
    }

    pub(crate) fn decline(&mut self, inc: &mut Incident, s: usize, now: Timestamp) {
        let d = inc.dispatch.as_mut().expect("decline checked the live offer");
        d.live.remove(&s);
        if d.broadcast {
            d.declined_broadcast.insert(s);
        }
        self.staff[s].live_offers.retain(|&i| i != inc.id);
        self.push(Action::Revoked { at: now, incident: inc.id, staff: self.staff[s].info.id.clone(), reason: RevokeReason::Declined });
        self.advance(inc, now);
    }

    /// Withdraws every live offer (the incident was answered elsewhere or cancelled).
    pub(crate) fn end_dispatch(&mut self, inc: &mut Incident, now: Timestamp, reason: RevokeReason) {
        if let Some(d) = inc.dispatch.take() {
            for &s in d.live.keys() {
                self.staff[s].live_offers.retain(|&i| i != inc.id);
                self.push(Action::Revoked { at: now, incident: inc.id, staff: self.staff[s].info.id.clone(), reason });
            }
        }
    }
}
