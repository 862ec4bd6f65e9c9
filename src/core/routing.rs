//! Ranking staff by estimated travel time.
//!
//! Each team keeps its on-duty staff in an R-tree over unit-sphere points, so "the
//! nearest eligible staff member" is a nearest-neighbour walk (O(log n) when the
//! nearest are eligible) rather than a scan of everyone on duty: at 10,000 on-duty
//! staff the first offer still takes microseconds. Within one team the travel-time
//! estimate is monotone in great-circle distance (same road factor and speed), and
//! between teams it is the configured matrix time, the same for all of the team, so
//! the walk's order is the travel-time order.

use std::time::Duration;

use rstar::{AABB, PointDistance, RTree, RTreeObject};

use super::geo::Position;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StaffPoint {
    pub xyz: [f64; 3],
    pub staff: usize,
}

impl RTreeObject for StaffPoint {
    type Envelope = AABB<[f64; 3]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xyz)
    }
}

impl PointDistance for StaffPoint {
    fn distance_2(&self, p: &[f64; 3]) -> f64 {
        (0..3).map(|i| (self.xyz[i] - p[i]).powi(2)).sum()
    }
}

/// A municipality's home-care team: who is on duty, and where.
#[derive(Debug, Default)]
pub(crate) struct Team {
    pub on_duty: RTree<StaffPoint>,
}

impl Team {
    pub fn on_duty_count(&self) -> usize {
        self.on_duty.size()
    }
}

/// A candidate for an offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub staff: usize,
    pub eta: Duration,
}

impl Candidate {
    /// Strictly better: sooner there, ties to the lower index (deterministic).
    pub fn beats(&self, other: &Candidate) -> bool {
        (self.eta, self.staff) < (other.eta, other.staff)
    }
}

pub(crate) fn point(staff: usize, at: Position) -> StaffPoint {
    StaffPoint { xyz: at.unit_vector(), staff }
}
