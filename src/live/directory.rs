//! The directory of residents and staff: CSV files in (`vakt import`), database rows out.
//!
//! `residents.csv`: `resident_id,municipality,lat,lon,address,notes,regular_helpers`
//! (`regular_helpers`: staff ids separated by `;`, may be empty).
//! `staff.csv`: `staff_id,municipality,name,roles` (`roles`: `;`-separated, from
//! `nurse`, `health_worker`, `assistant`, `technician`). A header row is required.
//! Every row is checked; a file with any bad row is refused whole, with every bad line.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::core::{MunicipalityId, Position, Resident, ResidentId, Roles, Staff, StaffId};
use crate::settings::parse_role;

pub const RESIDENT_COLUMNS: &[&str] = &["resident_id", "municipality", "lat", "lon", "address", "notes", "regular_helpers"];
pub const STAFF_COLUMNS: &[&str] = &["staff_id", "municipality", "name", "roles"];

/// Sample files shipped in the binary, named `builtin:NAME` in `[seed]`.
const BUILTIN: &[(&str, &str)] = &[
    ("demo-residents.csv", include_str!("../../data/demo-residents.csv")),
    ("demo-staff.csv", include_str!("../../data/demo-staff.csv")),
    ("indre-sogn-residents.csv", include_str!("../../data/indre-sogn-residents.csv")),
    ("indre-sogn-staff.csv", include_str!("../../data/indre-sogn-staff.csv")),
];

/// Reads a seed or import file: `builtin:NAME`, or a path relative to `base`.
pub fn read_source(source: &str, base: Option<&Path>) -> Result<String> {
    if let Some(name) = source.strip_prefix("builtin:") {
        return BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| (*text).to_owned()).with_context(|| format!("no built-in file {name:?}"));
    }
    let path = match base {
        Some(dir) => dir.join(source),
        None => source.into(),
    };
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn records(text: &str, columns: &[&str]) -> Result<Vec<(usize, csv::StringRecord)>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().context("reading the header row")?.clone();
    let found: Vec<&str> = header.iter().collect();
    if found != columns {
        bail!("the header must be {} (found {})", columns.join(","), found.join(","));
    }
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        out.push((line, rec.with_context(|| format!("line {line}"))?));
    }
    Ok(out)
}

fn collect<T>(rows: Vec<(usize, csv::StringRecord)>, parse: impl Fn(&csv::StringRecord) -> Result<T>) -> Result<Vec<T>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (line, rec) in rows {
        match parse(&rec) {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(format!("line {line}: {e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{} bad row(s), nothing imported:\n  {}", errors.len(), errors.join("\n  "));
    }
    Ok(ok)
}

fn number(rec: &csv::StringRecord, i: usize, name: &str) -> Result<f64> {
    rec[i].parse::<f64>().with_context(|| format!("{name} {:?} is not a number", &rec[i]))
}

pub fn parse_residents(text: &str) -> Result<Vec<Resident>> {
    collect(records(text, RESIDENT_COLUMNS)?, |r| {
        Ok(Resident {
            id: ResidentId::parse(&r[0])?,
            municipality: MunicipalityId::parse(&r[1])?,
            home: Position::new(number(r, 2, "lat")?, number(r, 3, "lon")?)?,
            address: r[4].to_owned(),
            notes: r[5].to_owned(),
            regular_helpers: r[6].split(';').map(str::trim).filter(|s| !s.is_empty()).map(StaffId::parse).collect::<Result<_, _>>()?,
        })
    })
}

/// Staff with their display names (the engine does not need names; the apps do).
pub fn parse_staff(text: &str) -> Result<Vec<(Staff, String)>> {
    collect(records(text, STAFF_COLUMNS)?, |r| {
        let roles = r[3].split(';').map(str::trim).filter(|s| !s.is_empty()).map(parse_role).collect::<Result<Vec<_>, _>>()?;
        Ok((Staff { id: StaffId::parse(&r[0])?, municipality: MunicipalityId::parse(&r[1])?, roles: Roles::of(&roles) }, r[2].to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_samples_parse() {
        for (name, text) in BUILTIN {
            if name.contains("residents") {
                assert!(parse_residents(text).unwrap().len() >= 10, "{name}");
            } else {
                assert!(parse_staff(text).unwrap().len() >= 4, "{name}");
            }
        }
    }

    #[test]
    fn bad_rows_are_listed_and_nothing_is_imported() {
        let text = "resident_id,municipality,lat,lon,address,notes,regular_helpers\nr1,demo,61.2,7.1,Vegen 1,,s1;s2\nr 2,demo,61.2,7.1,,,\nr3,demo,161,7.1,,,\n";
        let e = parse_residents(text).unwrap_err().to_string();
        assert!(e.contains("2 bad row(s)") && e.contains("line 3") && e.contains("line 4") && e.contains("latitude"), "{e}");
        let e = parse_staff("id,municipality\n").unwrap_err().to_string();
        assert!(e.contains("header must be staff_id,municipality,name,roles"), "{e}");
        let e = parse_staff("staff_id,municipality,name,roles\ns1,demo,Kari,nurse;pilot\n").unwrap_err().to_string();
        assert!(e.contains("unknown role \"pilot\""), "{e}");
        let ok = parse_residents("resident_id,municipality,lat,lon,address,notes,regular_helpers\nr1,demo,61.2,7.1,\"Vegen 1, 6856 Sogndal\",Nøkkelboks,s1;s2\n").unwrap();
        assert_eq!(ok[0].address, "Vegen 1, 6856 Sogndal");
        assert_eq!(ok[0].regular_helpers.len(), 2);
    }
}
