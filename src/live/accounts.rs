//! Accounts for the web side: roles, password hashes (argon2id), session tokens, and
//! the login rate limit. The tables are in the store (`users`, `sessions`); this module
//! holds what does not need a database, so it is tested without one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::core::{CentreId, StaffId};

/// What a user may do (docs/api.md, "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works the dashboard: sees and acts on the incidents of their centre's municipalities.
    Operator,
    /// Home-care staff: the staff app, acting only on incidents offered to them.
    Staff,
    /// Reads the dashboard and the KPIs; acts on nothing.
    Planner,
    /// Everything an operator may do, for every municipality.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Staff => "staff",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Role> {
        Ok(match s {
            "operator" => Role::Operator,
            "staff" => Role::Staff,
            "planner" => Role::Planner,
            "admin" => Role::Admin,
            other => bail!("unknown role {other:?} (operator, staff, planner or admin)"),
        })
    }
}

/// A user as stored (without the password hash).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// For `staff`: the staff member in the directory they act as.
    pub staff_id: Option<StaffId>,
    /// For `operator`: the response centre they work at.
    pub centre: Option<CentreId>,
}

impl User {
    /// Checks the combination of role and links (`vakt user add` and the store's reads).
    pub fn validate(&self) -> Result<()> {
        if self.username.is_empty() || self.username.len() > 64 || !self.username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)) {
            bail!("a username is 1 to 64 characters of letters, digits and . _ - @");
        }
        match (self.role, &self.staff_id, &self.centre) {
            (Role::Staff, None, _) => bail!("a staff user needs --staff STAFF_ID (who they are in the directory)"),
            (Role::Operator, _, None) => bail!("an operator needs --centre CENTRE_ID (the response centre they work at)"),
            (Role::Staff, Some(_), Some(_)) => bail!("a staff user has no centre"),
            (Role::Operator, Some(_), _) => bail!("an operator is not a staff member; make a separate staff user"),
            (Role::Planner | Role::Admin, Some(_), _) | (Role::Planner | Role::Admin, _, Some(_)) => {
                bail!("planners and admins have neither --staff nor --centre")
            }
            _ => Ok(()),
        }
    }
}

/// May this user see and act on incidents of this municipality (by index)? Operators:
/// the municipalities their centre answers first for or backs up. Admins and planners
/// (who only read): all. Staff: none through the dashboard (their app shows their offers).
pub fn may_see(config: &crate::core::EngineConfig, user: &User, municipality: usize) -> bool {
    match user.role {
        Role::Admin | Role::Planner => true,
        Role::Staff => false,
        Role::Operator => {
            let Some(centre) = &user.centre else { return false };
            let m = &config.municipalities[municipality];
            m.response_centre.as_ref() == Some(centre) || m.backup.as_ref() == Some(&crate::core::Backup::Centre(centre.clone()))
        }
    }
}

/// Whose refused alarms a user sees: those listed under the municipalities they see,
/// and those under a municipality no one has (a typo in a topic; `""`, an unknown
/// sender): an alarm that is nobody's is everybody's concern.
pub fn sees_refused(config: &crate::core::EngineConfig, user: &User, municipality: &str) -> bool {
    match crate::core::MunicipalityId::parse(municipality).ok().and_then(|id| config.municipality_index(&id)) {
        Some(i) => may_see(config, user, i),
        None => true,
    }
}

/// `may_see` by the municipality's id; an id not in the configuration is seen by nobody.
pub fn may_see_id(config: &crate::core::EngineConfig, user: &User, municipality: &crate::core::MunicipalityId) -> bool {
    config.municipality_index(municipality).is_some_and(|i| may_see(config, user, i))
}

/// The municipalities this user sees (`may_see`), in configuration order.
pub fn visible_municipalities<'a>(config: &'a crate::core::EngineConfig, user: &'a User) -> impl Iterator<Item = &'a crate::core::MunicipalityConfig> + 'a {
    config.municipalities.iter().enumerate().filter(move |(i, _)| may_see(config, user, *i)).map(|(_, m)| m)
}

pub const MIN_PASSWORD_LEN: usize = 10;

/// The rule a new password meets (checked again by `hash_password`).
pub fn acceptable_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("a password has at least {MIN_PASSWORD_LEN} characters");
    }
    Ok(())
}

/// An argon2id hash in PHC string format (salt and parameters included).
pub fn hash_password(password: &str) -> Result<String> {
    acceptable_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| anyhow!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("salt: {e}"))?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow!("hashing: {e}"))?.to_string())
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the user does not exist, so a wrong username costs
/// as much time as a wrong password (no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").expect("hashing works"))
}

/// 32 random bytes, hex: a session token or a CSRF token.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the OS gives randomness");
    hex(&b)
}

/// Sessions are stored by the SHA-256 of their token: a copy of the table opens nothing.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a session lives: a 12-hour shift with room to spare... and no longer.
pub const SESSION_TTL: Duration = Duration::from_secs(13 * 3600);

/// Failed logins (and wrong current passwords), counted so that guessing is slow and
/// nobody can lock anybody else out:
/// - a username from one address gets `per_pair` failures within `window`; then that
///   address waits, for that username only;
/// - one address gets `per_address` failures, whatever the usernames (an office behind
///   one address has many users, so four times as many); then that address waits;
/// - a username gets `per_user` failures from everywhere together (ten times
///   `per_pair`: someone guessing from many addresses); then the addresses that have
///   failed for it wait. An address that has not failed for that username never waits
///   for it: the right password from the operator's own desk still works while someone
///   elsewhere guesses.
///
/// Before, five failures locked the username itself for five minutes, from everywhere:
/// anyone on the network could keep every operator out of the dashboard.
/// IPv6 addresses count by their /64 (one host's share of a network).
pub struct LoginLimiter {
    per_pair: usize,
    per_address: usize,
    per_user: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// The keys a login attempt is counted under.
struct Keys {
    pair: String,
    address: String,
    user: String,
}

impl Keys {
    fn of(username: &str, address: Option<std::net::IpAddr>) -> Keys {
        // Bounded, so a flood of long made-up names cannot grow the map's keys.
        let user: String = username.chars().take(64).collect();
        let address = match address.map(|a| a.to_canonical()) {
            Some(std::net::IpAddr::V6(a)) => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(a) => a.to_string(),
            None => "unknown".to_owned(),
        };
        Keys { pair: format!("pair:{address} {user}"), address: format!("ip:{address}"), user: format!("user:{user}") }
    }
}

impl LoginLimiter {
    /// `per_pair` failures of a username from one address; four times as many from one
    /// address, ten times as many of one username.
    pub fn new(per_pair: usize, window: Duration) -> LoginLimiter {
        let per_pair = per_pair.max(1);
        LoginLimiter { per_pair, per_address: 4 * per_pair, per_user: 10 * per_pair, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` if `username` from `address` (where known) must wait.
    pub fn check(&self, username: &str, address: Option<std::net::IpAddr>, now: Instant) -> Result<(), Duration> {
        let keys = Keys::of(username, address);
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() > 10_000 {
            // Forget what has aged out everywhere, so made-up usernames do not pile up.
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let mut recent = |key: &str| -> Vec<Instant> {
            map.get_mut(key).map_or_else(Vec::new, |v| {
                v.retain(|t| now.duration_since(*t) < self.window);
                v.clone()
            })
        };
        let (pair, address, user) = (recent(&keys.pair), recent(&keys.address), recent(&keys.user));
        let over = |v: &[Instant], limit: usize| (v.len() >= limit).then(|| (v[v.len() - limit] + self.window).duration_since(now));
        // The username's own limit applies only where it has failed from here.
        let user_wait = if pair.is_empty() { None } else { over(&user, self.per_user) };
        [over(&pair, self.per_pair), over(&address, self.per_address), user_wait].into_iter().flatten().max().map_or(Ok(()), Err)
    }

    pub fn failed(&self, username: &str, address: Option<std::net::IpAddr>, now: Instant) {
        let keys = Keys::of(username, address);
        let mut map = self.failures.lock().expect("limiter lock");
        for k in [keys.pair, keys.address, keys.user] {
            map.entry(k).or_default().push(now);
        }
    }

    /// A good login clears that username's failures from that address (not the
    /// address's, nor the username's from elsewhere).
    pub fn succeeded(&self, username: &str, address: Option<std::net::IpAddr>) {
        self.failures.lock().expect("limiter lock").remove(&Keys::of(username, address).pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn limiter_refuses_after_failures_and_forgets_after_the_window() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let (office, desk) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for i in 0..3 {
            assert!(l.check("ola", office, t0).is_ok(), "attempt {i}");
            l.failed("ola", office, t0);
        }
        let wait = l.check("ola", office, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.check("ola", desk, t0).is_ok(), "ola from an address that has not failed is not locked out");
        // Other users from the same office address, until the address has had 12 failures.
        for name in ["kari", "per", "liv"] {
            for _ in 0..3 {
                assert!(l.check(name, office, t0).is_ok(), "{name}");
                l.failed(name, office, t0);
            }
        }
        assert!(l.check("anne", office, t0).is_err(), "the address is over its limit");
        assert!(l.check("anne", desk, t0).is_ok(), "anne from elsewhere is not");
        assert!(l.check("ola", office, t0 + Duration::from_secs(61)).is_ok(), "forgotten after the window");
        l.succeeded("kari", desk);
        assert!(l.check("kari", office, t0).is_err(), "a good login elsewhere clears nothing here");
    }

    /// Guessing one username from many addresses: after ten times the per-address
    /// limit, every address that failed for it waits, and one that never did still
    /// gets in.
    #[test]
    fn a_username_guessed_from_everywhere_still_opens_from_a_clean_address() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let ip = |i: u8| Some(std::net::IpAddr::from([10, 1, 0, i]));
        for i in 0..10 {
            for _ in 0..3 {
                assert!(l.check("ops", ip(i), t0).is_ok());
                l.failed("ops", ip(i), t0);
            }
        }
        assert!(l.check("ops", ip(100), t0).is_ok(), "an address that never failed for ops");
        l.failed("ops", ip(100), t0);
        assert!(l.check("ops", ip(100), t0).is_err(), "once it has failed, the username's own limit holds it too");
        assert!(l.check("kari", ip(100), t0).is_ok(), "for ops only");
        // IPv6 counts by the /64: the next address of the same host's network is the same.
        let (a, b) = (Some("2001:db8:1:2::1".parse().unwrap()), Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        for _ in 0..3 {
            l.failed("kari", a, t0);
        }
        assert!(l.check("kari", b, t0).is_err());
        assert!(l.check("kari", Some("2001:db8:1:3::1".parse().unwrap()), t0).is_ok());
    }

    #[test]
    fn roles_need_their_links() {
        let s = |role, staff: Option<&str>, centre: Option<&str>| User {
            username: "u1".into(),
            role,
            staff_id: staff.map(|s| StaffId::parse(s).unwrap()),
            centre: centre.map(|c| CentreId::parse(c).unwrap()),
        };
        assert!(s(Role::Staff, Some("s1"), None).validate().is_ok());
        assert!(s(Role::Staff, None, None).validate().is_err());
        assert!(s(Role::Operator, None, Some("c")).validate().is_ok());
        assert!(s(Role::Operator, None, None).validate().is_err());
        assert!(s(Role::Admin, None, None).validate().is_ok());
        assert!(s(Role::Planner, None, Some("c")).validate().is_err());
        assert_ne!(token_digest(&new_token()), token_digest(&new_token()));
    }
}
