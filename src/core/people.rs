//! The people the engine routes between: residents (alarm users) and home-care staff.

use std::fmt;

use super::geo::Position;
use super::ids::{MunicipalityId, ResidentId, StaffId};

/// A staff member's role. An alarm kind may require one (e.g. medication: a nurse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sjukepleiar: registered nurse.
    Nurse,
    /// Helsefagarbeidar: licensed health worker.
    HealthWorker,
    /// Assistent: unlicensed assistant.
    Assistant,
    /// Installs and repairs welfare-technology equipment.
    Technician,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Nurse, Role::HealthWorker, Role::Assistant, Role::Technician];
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nurse => "nurse",
            Role::HealthWorker => "health_worker",
            Role::Assistant => "assistant",
            Role::Technician => "technician",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles, as a bit set (checked on every candidate, so it must be cheap).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "Vec<Role>", into = "Vec<Role>")]
pub struct Roles(u8);

impl From<Vec<Role>> for Roles {
    fn from(v: Vec<Role>) -> Self {
        Roles::of(&v)
    }
}

impl From<Roles> for Vec<Role> {
    fn from(r: Roles) -> Self {
        r.iter().collect()
    }
}

impl Roles {
    pub const NONE: Roles = Roles(0);
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }
    pub fn contains_all(self, required: Roles) -> bool {
        self.0 & required.0 == required.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.0 & r.bit() != 0)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// An alarm user.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resident {
    pub id: ResidentId,
    pub municipality: MunicipalityId,
    pub home: Position,
    /// Staff who know this person; preferred when they are nearly as close as the nearest.
    pub regular_helpers: Vec<StaffId>,
    /// Street address, shown with the offer.
    #[serde(default)]
    pub address: String,
    /// Shown to whoever takes the alarm (door code, key box, "hard of hearing").
    #[serde(default)]
    pub notes: String,
}

/// A home-care staff member as registered. Whether they are on duty, where they are
/// and whether they are busy is the engine's live state, changed by inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Staff {
    pub id: StaffId,
    /// The team they belong to: their municipality's home-care service.
    pub municipality: MunicipalityId,
    pub roles: Roles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sets() {
        let nurse_and_tech = Roles::of(&[Role::Nurse, Role::Technician]);
        assert!(nurse_and_tech.contains_all(Roles::of(&[Role::Nurse])));
        assert!(nurse_and_tech.contains_all(Roles::NONE));
        assert!(!Roles::of(&[Role::Assistant]).contains_all(Roles::of(&[Role::Nurse])));
        assert_eq!(format!("{nurse_and_tech:?}"), "{Nurse, Technician}");
    }
}
