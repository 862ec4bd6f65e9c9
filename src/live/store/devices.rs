//! The device register (`vakt import devices`) and when each device was last heard.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use sqlx::Row;

use super::Store;
use super::sql::{Val, insert_rows_with};
use crate::core::Timestamp;
use crate::live::devices::Device;
use crate::live::devices::supervision::Contact;

/// A device's contact, as a batch stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactRow {
    pub last_heard_ms: i64,
    pub silent_since_ms: Option<i64>,
}

impl From<Contact> for ContactRow {
    fn from(c: Contact) -> ContactRow {
        ContactRow { last_heard_ms: c.last_heard.as_millis(), silent_since_ms: c.silent_since.map(Timestamp::as_millis) }
    }
}

pub(super) const CONTACT_COLUMNS: [&str; 3] = ["device_id", "last_heard_ms", "silent_since_ms"];

/// Later rows win (a batch keeps one per device).
pub(super) const CONTACT_UPSERT: &str =
    " ON CONFLICT (device_id) DO UPDATE SET last_heard_ms = excluded.last_heard_ms, silent_since_ms = excluded.silent_since_ms";

impl Store {
    /// Adds or replaces devices by id (a device moved to another account or resident
    /// keeps its contact).
    pub async fn upsert_devices(&self, devices: &[Device], now_ms: i64) -> Result<()> {
        let keys: Vec<String> = devices.iter().map(Device::key_hex).collect();
        let rows: Vec<Vec<Val>> = devices
            .iter()
            .zip(&keys)
            .map(|(d, key)| {
                vec![
                    Val::Text(&d.id),
                    Val::Text(d.protocol.as_str()),
                    Val::Text(&d.account),
                    Val::Text(d.resident.as_str()),
                    Val::Text(key),
                    Val::OptI64(d.heartbeat.map(|h| h.as_secs() as i64)),
                    Val::I64(now_ms),
                ]
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        // An account that moves from one device id to another: the old row goes.
        for d in devices {
            sqlx::query("DELETE FROM devices WHERE protocol = $1 AND account = $2 AND id <> $3")
                .bind(d.protocol.as_str())
                .bind(d.account.as_str())
                .bind(d.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        insert_rows_with(
            self.backend,
            &mut tx,
            "devices",
            &["id", "protocol", "account", "resident_id", "aes_key", "heartbeat_secs", "updated_ms"],
            &rows,
            " ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, account = excluded.account, resident_id = excluded.resident_id, \
             aes_key = excluded.aes_key, heartbeat_secs = excluded.heartbeat_secs, updated_ms = excluded.updated_ms",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The whole register.
    pub async fn devices(&self) -> Result<Vec<Device>> {
        let rows = sqlx::query("SELECT id, protocol, account, resident_id, aes_key, heartbeat_secs FROM devices ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let heartbeat: Option<i64> = r.try_get(5)?;
                Device::new(
                    &id,
                    &r.try_get::<String, _>(1)?,
                    &r.try_get::<String, _>(2)?,
                    &r.try_get::<String, _>(3)?,
                    &r.try_get::<String, _>(4)?,
                    heartbeat.map(|h| h as u64),
                )
                .with_context(|| format!("device {id} in the database"))
            })
            .collect()
    }

    /// Every device's last contact.
    pub async fn device_contacts(&self) -> Result<HashMap<String, Contact>> {
        let rows = sqlx::query("SELECT device_id, last_heard_ms, silent_since_ms FROM device_contact").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let silent: Option<i64> = r.try_get(2)?;
                Ok((r.try_get(0)?, Contact { last_heard: Timestamp::from_millis(r.try_get(1)?), silent_since: silent.map(Timestamp::from_millis) }))
            })
            .collect()
    }

    /// The ids of every resident in the directory.
    pub async fn resident_ids(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT id FROM residents").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
