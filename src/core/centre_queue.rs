//! The response-centre models (shared, private, own): the alarm waits in the centre's
//! operator queue; an operator answers (the answer clock stops), then resolves it or
//! forwards it to home care. A centre with no operators on duty (an outage), or an
//! alarm waiting longer than the centre's overflow time, moves to the backup centre;
//! at the end of the chain the municipality's own backup is called on (a team: the
//! staff ladder starts, while the alarm stays visible in the queue).

use super::action::Action;
use super::config::Backup;
use super::engine::Engine;
use super::incident::{Incident, Queue};
use super::time::Timestamp;

enum Hop {
    Centre(usize),
    Team(usize),
}

impl Engine {
    pub(crate) fn enqueue(&mut self, inc: &mut Incident, centre: usize, now: Timestamp) {
        let (mut visited, municipal_backup_used) = match inc.queue.take() {
            Some(q) => (q.visited, q.municipal_backup_used),
            None => (Vec::new(), false),
        };
        visited.push(centre);
        inc.queue = Some(Queue { centre, since: now, visited, municipal_backup_used });
        self.push(Action::Queued { at: now, incident: inc.id, centre: self.config.centres[centre].id.clone() });
    }

    pub(crate) fn dequeue(&mut self, inc: &mut Incident, now: Timestamp) {
        if let Some(q) = inc.queue.take() {
            self.push_dequeued(inc, q.centre, now);
        }
    }

    fn push_dequeued(&mut self, inc: &Incident, centre: usize, now: Timestamp) {
        self.push(Action::Dequeued { at: now, incident: inc.id, centre: self.config.centres[centre].id.clone() });
    }

    /// Where the queued alarm would go next, if anywhere.
    fn next_hop(&self, inc: &Incident) -> Option<Hop> {
        let q = inc.queue.as_ref()?;
        if let Some(b) = self.config.centres[q.centre].backup.as_ref().and_then(|b| self.config.centre_index(b)) {
            if !q.visited.contains(&b) {
                return Some(Hop::Centre(b));
            }
        }
        // End of the centre chain: the municipality's backup, for the centre models only
        // (a mobile guard room's queue *is* its backup).
        if q.municipal_backup_used || inc.model.centre_kind().is_none() {
            return None;
        }
        match &self.config.municipalities[inc.muni].backup {
            Some(Backup::Centre(c)) => self.config.centre_index(c).filter(|c| !q.visited.contains(c)).map(Hop::Centre),
            Some(Backup::Team(t)) if inc.dispatch.is_none() => self.config.municipality_index(t).map(Hop::Team),
            _ => None,
        }
    }

    /// The overflow time, if overflowing would move the alarm somewhere.
    pub(crate) fn queue_deadline(&self, inc: &Incident) -> Option<Timestamp> {
        let q = inc.queue.as_ref()?;
        self.next_hop(inc)?;
        Some(q.since + self.config.centres[q.centre].overflow_after)
    }

    pub(crate) fn step_queue(&mut self, inc: &mut Incident, now: Timestamp) {
        // Bounded: each hop visits a new centre, or uses the municipal backup once.
        loop {
            let Some(q) = inc.queue.as_ref() else { return };
            let centre = q.centre;
            let outage = self.centres[centre].operators_on_duty == 0;
            if !outage && now < q.since + self.config.centres[centre].overflow_after {
                return;
            }
            match self.next_hop(inc) {
                None => return,
                Some(Hop::Centre(b)) => {
                    let backup = Backup::Centre(self.config.centres[b].id.clone());
                    if self.config.centres[centre].backup.as_ref() != Some(&self.config.centres[b].id) {
                        inc.queue.as_mut().expect("queued").municipal_backup_used = true;
                    }
                    // Leaves this centre's queue; `enqueue` keeps the route taken so far.
                    self.push_dequeued(inc, centre, now);
                    self.push(Action::ForwardedToBackup { at: now, incident: inc.id, backup });
                    self.enqueue(inc, b, now);
                }
                Some(Hop::Team(t)) => {
                    inc.queue.as_mut().expect("queued").municipal_backup_used = true;
                    let backup = Backup::Team(self.config.municipalities[t].id.clone());
                    self.push(Action::ForwardedToBackup { at: now, incident: inc.id, backup });
                    self.start_dispatch(inc, now, true, t);
                    return;
                }
            }
        }
    }
}
