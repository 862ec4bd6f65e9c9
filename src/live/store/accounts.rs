//! The web side's accounts and sessions, and the audit trail of who did what.

use anyhow::{Result, bail};
use sqlx::Row;

use super::Store;
use super::sql::{Val, insert_rows};
use crate::core::{CentreId, StaffId};
use crate::live::accounts::{Role, User};

/// A user as stored, with their password's hash.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUser {
    pub user: User,
    pub password_hash: String,
}

/// A live session: whose, and its CSRF token.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

/// The role of vakt's own lines in the audit trail (refused alarms, incidents set
/// aside), beside the users' roles.
pub const SYSTEM_ROLE: &str = "system";

/// One line of the audit trail: who did what, when, and whether it was done.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRow {
    pub at_ms: i64,
    pub username: String,
    pub role: &'static str,
    pub action: String,
    pub incident: Option<i64>,
    pub detail: String,
    /// `ok`, or the code of the reason it was refused.
    pub outcome: String,
}

/// A batch's rows for each table it inserts into: (table, columns, rows), the same for
/// both ways of writing a batch.
pub(super) const AUDIT_COLUMNS: [&str; 7] = ["at_ms", "username", "role", "action", "incident", "detail", "outcome"];

pub(super) fn audit_values(a: &AuditRow) -> Vec<Val<'_>> {
    vec![
        Val::I64(a.at_ms),
        Val::Text(&a.username),
        Val::Text(a.role),
        Val::Text(&a.action),
        Val::OptI64(a.incident),
        Val::Text(&a.detail),
        Val::Text(&a.outcome),
    ]
}

/// Multi-row INSERT in chunks (one round trip per chunk, not per row).
pub(super) fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = r.try_get(1)?;
    let staff: Option<String> = r.try_get(2)?;
    let centre: Option<String> = r.try_get(3)?;
    Ok(User {
        username: r.try_get(0)?,
        role: Role::parse(&role)?,
        staff_id: staff.map(|s| StaffId::parse(&s)).transpose()?,
        centre: centre.map(|c| CentreId::parse(&c)).transpose()?,
    })
}

impl Store {
    /// The details of the latest `limit` audit lines of `action`, newest first.
    pub async fn latest_audit(&self, action: &str, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT detail FROM audit WHERE action = $1 ORDER BY seq DESC LIMIT $2").bind(action).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The details of the latest `limit` audit lines of `action` that succeeded
    /// (outcome `ok`), newest first.
    pub async fn latest_audit_ok(&self, action: &str, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT detail FROM audit WHERE action = $1 AND outcome = 'ok' ORDER BY seq DESC LIMIT $2")
            .bind(action)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// One audit line written on its own (logins, logouts); engine actions go with their batch.
    pub async fn audit(&self, row: &AuditRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_rows(self.backend, &mut tx, "audit", &AUDIT_COLUMNS, &[audit_values(row)]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a user, or with `replace` changes an existing one (new password, role, links).
    pub async fn put_user(&self, user: &User, password_hash: &str, now_ms: i64, replace: bool) -> Result<()> {
        user.validate()?;
        let sql = if replace {
            "INSERT INTO users (username, password_hash, role, staff_id, centre, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, staff_id = excluded.staff_id, centre = excluded.centre"
        } else {
            "INSERT INTO users (username, password_hash, role, staff_id, centre, created_ms) VALUES ($1, $2, $3, $4, $5, $6)"
        };
        let r = sqlx::query(sql)
            .bind(user.username.as_str())
            .bind(password_hash)
            .bind(user.role.as_str())
            .bind(user.staff_id.as_ref().map(|s| s.as_str().to_owned()))
            .bind(user.centre.as_ref().map(|c| c.as_str().to_owned()))
            .bind(now_ms)
            .execute(&self.pool)
            .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => bail!("user {:?} exists (use --replace to change it)", user.username),
            r => {
                r?;
            }
        }
        if replace {
            // A changed password or role ends every session the user had.
            sqlx::query("DELETE FROM sessions WHERE username = $1").bind(user.username.as_str()).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The user and their password hash.
    pub async fn user(&self, username: &str) -> Result<Option<StoredUser>> {
        let row = sqlx::query("SELECT username, role, staff_id, centre, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(StoredUser { user: user_from_row(&r)?, password_hash: r.try_get(4)? })).transpose()
    }

    /// Removes a user and ends their sessions. `false` if there was no such user.
    pub async fn remove_user(&self, username: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM users WHERE username = $1").bind(username).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT username, role, staff_id, centre FROM users ORDER BY username").fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn create_session(&self, digest: &str, username: &str, csrf: &str, now_ms: i64, expires_ms: i64) -> Result<()> {
        // Expired sessions go when new ones come.
        sqlx::query("DELETE FROM sessions WHERE expires_ms < $1").bind(now_ms).execute(&self.pool).await?;
        sqlx::query("INSERT INTO sessions (token_digest, username, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(digest)
            .bind(username)
            .bind(csrf)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of a live session, and its CSRF token.
    pub async fn session(&self, digest: &str, now_ms: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT u.username, u.role, u.staff_id, u.centre, s.csrf FROM sessions s JOIN users u ON u.username = s.username WHERE s.token_digest = $1 AND s.expires_ms > $2",
        )
        .bind(digest)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(Session { user: user_from_row(&r)?, csrf: r.try_get(4)? })).transpose()
    }

    /// A user's new password: every other session of theirs ends, `keep` (the session
    /// that changed it) stays. False if the user no longer exists.
    pub async fn set_password(&self, username: &str, password_hash: &str, keep: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2").bind(password_hash).bind(username).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM sessions WHERE username = $1 AND token_digest <> $2").bind(username).bind(keep).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_session(&self, digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_digest = $1").bind(digest).execute(&self.pool).await?;
        Ok(())
    }

    /// Every line of the audit trail about an incident, oldest first.
    pub async fn incident_audit(&self, incident: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT at_ms, username, role, action, incident, detail, outcome FROM audit WHERE incident = $1 ORDER BY seq")
            .bind(incident)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(2)?;
                Ok(AuditRow {
                    at_ms: r.try_get(0)?,
                    username: r.try_get(1)?,
                    role: if role == SYSTEM_ROLE { SYSTEM_ROLE } else { crate::live::accounts::Role::parse(&role)?.as_str() },
                    action: r.try_get(3)?,
                    incident: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                })
            })
            .collect()
    }
}
