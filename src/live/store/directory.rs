//! The directory: residents and staff, as `vakt import` and the seed write them and
//! the engine's watcher reads them.

use anyhow::{Context, Result};
use sqlx::Row;

use super::Store;
use super::sql::{Val, insert_rows_with};
use crate::core::{MunicipalityId, Position, Resident, ResidentId, Roles, Staff, StaffId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryProbe {
    pub residents: i64,
    pub staff: i64,
    pub devices: i64,
    pub newest_ms: i64,
    /// The device register's newest change (it is read whole when this or the count moves).
    pub devices_newest_ms: i64,
}

/// A directory entry as stored, with when it last changed.
#[derive(Debug, Clone)]
pub struct DirectoryRow<T> {
    pub entry: T,
    pub updated_ms: i64,
}

/// A staff member's display name (the engine needs none; the pages do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffName {
    pub staff_id: String,
    pub name: String,
}

impl Store {
    pub async fn upsert_residents(&self, residents: &[Resident], now_ms: i64) -> Result<()> {
        let helpers: Vec<String> = residents.iter().map(|r| r.regular_helpers.iter().map(StaffId::as_str).collect::<Vec<_>>().join(";")).collect();
        let rows: Vec<Vec<Val>> = residents
            .iter()
            .zip(&helpers)
            .map(|(r, h)| {
                vec![
                    Val::Text(r.id.as_str()),
                    Val::Text(r.municipality.as_str()),
                    Val::F64(r.home.lat()),
                    Val::F64(r.home.lon()),
                    Val::Text(&r.address),
                    Val::Text(&r.notes),
                    Val::Text(h),
                    Val::I64(now_ms),
                ]
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        // Later rows win over earlier ones with the same id (one statement may not touch a row twice).
        let mut last = rustc_hash::FxHashMap::default();
        for (i, r) in residents.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let rows: Vec<Vec<Val>> = rows.into_iter().enumerate().filter(|(i, _)| last.get(residents[*i].id.as_str()) == Some(i)).map(|(_, r)| r).collect();
        insert_rows_with(
            self.backend,
            &mut tx,
            "residents",
            &["id", "municipality", "lat", "lon", "address", "notes", "regular_helpers", "updated_ms"],
            &rows,
            " ON CONFLICT (id) DO UPDATE SET municipality = excluded.municipality, lat = excluded.lat, lon = excluded.lon, address = excluded.address, \
             notes = excluded.notes, regular_helpers = excluded.regular_helpers, updated_ms = excluded.updated_ms",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A staff member's name from the directory.
    pub async fn staff_name(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT name FROM staff WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Staff names by id, for the dashboard.
    pub async fn staff_names(&self) -> Result<Vec<StaffName>> {
        let rows = sqlx::query("SELECT id, name FROM staff ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(StaffName { staff_id: r.try_get(0)?, name: r.try_get(1)? })).collect()
    }

    pub async fn upsert_staff(&self, staff: &[(Staff, String)], now_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (s, name) in staff {
            let roles = s.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(";");
            sqlx::query(
                "INSERT INTO staff (id, municipality, name, roles, updated_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET municipality = excluded.municipality, name = excluded.name, roles = excluded.roles, updated_ms = excluded.updated_ms",
            )
            .bind(s.id.as_str())
            .bind(s.municipality.as_str())
            .bind(name.as_str())
            .bind(roles)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A cheap fingerprint of the directory: row counts and the newest change.
    pub async fn directory_probe(&self) -> Result<DirectoryProbe> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM residents), (SELECT COALESCE(MAX(updated_ms), 0) FROM residents), \
             (SELECT COUNT(*) FROM staff), (SELECT COALESCE(MAX(updated_ms), 0) FROM staff), \
             (SELECT COUNT(*) FROM devices), (SELECT COALESCE(MAX(updated_ms), 0) FROM devices)",
        )
        .fetch_one(&self.pool)
        .await?;
        let (rc, rm, sc, sm): (i64, i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        let (dc, dm): (i64, i64) = (row.try_get(4)?, row.try_get(5)?);
        Ok(DirectoryProbe { residents: rc, staff: sc, devices: dc, newest_ms: rm.max(sm), devices_newest_ms: dm })
    }

    /// Residents changed at or after `since_ms`.
    pub async fn residents_since(&self, since_ms: i64) -> Result<Vec<DirectoryRow<Resident>>> {
        let rows =
            sqlx::query("SELECT id, municipality, lat, lon, address, notes, regular_helpers, updated_ms FROM residents WHERE updated_ms >= $1 ORDER BY id")
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let parse = || -> Result<Resident> {
                let helpers: String = r.try_get(6)?;
                Ok(Resident {
                    id: ResidentId::parse(&id)?,
                    municipality: MunicipalityId::parse(&r.try_get::<String, _>(1)?)?,
                    home: Position::new(r.try_get(2)?, r.try_get(3)?)?,
                    address: r.try_get(4)?,
                    notes: r.try_get(5)?,
                    regular_helpers: helpers.split(';').filter(|h| !h.is_empty()).map(StaffId::parse).collect::<Result<_, _>>()?,
                })
            };
            out.push(DirectoryRow { entry: parse().with_context(|| format!("resident {id} in the database"))?, updated_ms: r.try_get(7)? });
        }
        Ok(out)
    }

    /// Staff changed at or after `since_ms`.
    pub async fn staff_since(&self, since_ms: i64) -> Result<Vec<DirectoryRow<Staff>>> {
        let rows = sqlx::query("SELECT id, municipality, roles, updated_ms FROM staff WHERE updated_ms >= $1 ORDER BY id")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let parse = || -> Result<Staff> {
                let roles: String = r.try_get(2)?;
                let roles = roles.split(';').filter(|s| !s.is_empty()).map(crate::settings::parse_role).collect::<Result<Vec<_>, _>>()?;
                Ok(Staff { id: StaffId::parse(&id)?, municipality: MunicipalityId::parse(&r.try_get::<String, _>(1)?)?, roles: Roles::of(&roles) })
            };
            out.push(DirectoryRow { entry: parse().with_context(|| format!("staff member {id} in the database"))?, updated_ms: r.try_get(3)? });
        }
        Ok(out)
    }
}
