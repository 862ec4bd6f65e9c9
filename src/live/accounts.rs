//! Accounts for the web side: roles, password hashes (argon2id), session tokens, and
//! the login rate limit. The tables are in the store (`users`, `sessions`); this module
//! holds what does not need a database, so it is tested without one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
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
            (Role::Planner | Role::Admin, Some(_), _) | (Role::Planner | Role::Admin, _, Some(_)) => bail!("planners and admins have neither --staff nor --centre"),
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

/// Login attempts per key (the username, and the client address where known): at most
/// a key's limit of failures within `window`; after that, refused until the oldest ages
/// out. A client address gets `per_address` failures (an office behind one address has
/// many users); a username gets `per_user`.
pub struct LoginLimiter {
    per_user: usize,
    per_address: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// What a limiter counts failures by.
pub enum LimitKey<'a> {
    User(&'a str),
    Address(std::net::IpAddr),
}

impl LimitKey<'_> {
    fn key(&self) -> String {
        match self {
            // Bounded, so a flood of long made-up names cannot grow the map's keys.
            LimitKey::User(u) => format!("user:{}", u.chars().take(64).collect::<String>()),
            LimitKey::Address(a) => format!("ip:{a}"),
        }
    }
}

impl LoginLimiter {
    pub fn new(per_user: usize, per_address: usize, window: Duration) -> LoginLimiter {
        LoginLimiter { per_user, per_address, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` if any key is over its limit.
    pub fn check(&self, keys: &[LimitKey<'_>], now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() > 10_000 {
            // Forget what has aged out everywhere, so made-up usernames do not pile up.
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let mut wait = None;
        for k in keys {
            let limit = match k {
                LimitKey::User(_) => self.per_user,
                LimitKey::Address(_) => self.per_address,
            };
            if let Some(v) = map.get_mut(&k.key()) {
                v.retain(|t| now.duration_since(*t) < self.window);
                if v.len() >= limit {
                    let until = v[v.len() - limit] + self.window;
                    wait = Some(wait.unwrap_or(Duration::ZERO).max(until.duration_since(now)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, keys: &[LimitKey<'_>], now: Instant) {
        let mut map = self.failures.lock().expect("limiter lock");
        for k in keys {
            map.entry(k.key()).or_default().push(now);
        }
    }

    /// A good login clears the user's failures (not the address's).
    pub fn succeeded(&self, username: &str) {
        self.failures.lock().expect("limiter lock").remove(&LimitKey::User(username).key());
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
        let l = LoginLimiter::new(3, 5, Duration::from_secs(60));
        let t0 = Instant::now();
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..3 {
            assert!(l.check(&[LimitKey::User("ola"), LimitKey::Address(ip)], t0).is_ok(), "attempt {i}");
            l.failed(&[LimitKey::User("ola"), LimitKey::Address(ip)], t0);
        }
        let wait = l.check(&[LimitKey::User("ola")], t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Another user from the same office address still has two tries before the address is blocked.
        for _ in 0..2 {
            assert!(l.check(&[LimitKey::User("kari"), LimitKey::Address(ip)], t0).is_ok());
            l.failed(&[LimitKey::User("kari"), LimitKey::Address(ip)], t0);
        }
        assert!(l.check(&[LimitKey::User("per"), LimitKey::Address(ip)], t0).is_err(), "the address is over its limit");
        assert!(l.check(&[LimitKey::User("per")], t0).is_ok(), "per from elsewhere is not");
        assert!(l.check(&[LimitKey::User("ola")], t0 + Duration::from_secs(61)).is_ok());
        l.succeeded("kari");
        assert!(l.check(&[LimitKey::User("kari")], t0).is_ok());
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
