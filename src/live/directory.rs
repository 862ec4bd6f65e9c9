//! The directory of residents and staff: CSV files in (`vakt import`), database rows out.
//!
//! `residents.csv`: `resident_id,municipality,lat,lon,address,notes,regular_helpers`
//! (`regular_helpers`: staff ids separated by `;`, may be empty).
//! `staff.csv`: `staff_id,municipality,name,roles` (`roles`: `;`-separated, from
//! `nurse`, `health_worker`, `assistant`, `technician`). A header row is required.
//! Every row is checked, and so is its municipality against the configuration; a file
//! with any bad row (or an id twice) is refused whole, with every bad line.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::store::{DirectoryProbe, Store};
use crate::core::{EngineConfig, MunicipalityId, Position, Resident, ResidentId, Roles, Staff, StaffId};
use crate::settings::parse_role;
use tracing::warn;

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

/// The file's rows with the line each starts on (a quoted field may hold a line
/// break), or what is wrong with a row (a wrong number of fields, bad UTF-8).
pub(crate) fn records(text: &str, columns: &[&str]) -> Result<Vec<(u64, Result<csv::StringRecord, String>)>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().context("reading the header row")?.clone();
    let found: Vec<&str> = header.iter().collect();
    if found != columns {
        bail!("the header must be {} (found {})", columns.join(","), found.join(","));
    }
    let mut out = Vec::new();
    let mut line = 2;
    for rec in reader.records() {
        match rec {
            Ok(rec) => {
                line = rec.position().map_or(line, |p| p.line());
                out.push((line, Ok(rec)));
            }
            Err(e) => {
                line = e.position().map_or(line, |p| p.line());
                let why = match e.kind() {
                    csv::ErrorKind::UnequalLengths { len, .. } => format!("{len} fields; the header has {}", columns.len()),
                    _ => e.to_string(),
                };
                out.push((line, Err(why)));
            }
        }
        line += 1;
    }
    Ok(out)
}

/// Parses every row, and refuses the whole file if any row is bad, listing each: a
/// row `parse` refuses, a municipality the configuration does not have (its alarms
/// could never be routed), or an id already on an earlier line (one of the two would
/// silently win).
fn collect<T>(
    rows: Vec<(u64, Result<csv::StringRecord, String>)>,
    config: &EngineConfig,
    parse: impl Fn(&csv::StringRecord) -> Result<T>,
    key: impl Fn(&T) -> (&str, &MunicipalityId),
) -> Result<Vec<T>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for (line, rec) in rows {
        let parsed = rec.map_err(anyhow::Error::msg).and_then(|r| parse(&r)).and_then(|v| {
            let (id, municipality) = key(&v);
            if config.municipality_index(municipality).is_none() {
                let known: Vec<&str> = config.municipalities.iter().map(|m| m.id.as_str()).collect();
                bail!("municipality {:?} is not in the configuration (it has {})", municipality.as_str(), known.join(", "));
            }
            match first_line.entry(id.to_owned()) {
                Entry::Occupied(earlier) => bail!("{id:?} is already on line {}", earlier.get()),
                Entry::Vacant(first) => first.insert(line),
            };
            Ok(v)
        });
        match parsed {
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

/// A field people read (an address, notes, a name): refused if it holds a character
/// they could not see (a control character, or an invisible formatting one); an
/// address or notes may run over several lines.
fn readable(rec: &csv::StringRecord, i: usize, name: &str, newlines: bool) -> Result<String> {
    match crate::core::text::refused(&rec[i], newlines) {
        Some(why) => bail!("{name} {why}"),
        None => Ok(rec[i].to_owned()),
    }
}

/// Residents for the municipalities `config` has.
pub fn parse_residents(text: &str, config: &EngineConfig) -> Result<Vec<Resident>> {
    let rows = records(text, RESIDENT_COLUMNS)?;
    collect(
        rows,
        config,
        |r| {
            Ok(Resident {
                id: ResidentId::parse(&r[0])?,
                municipality: MunicipalityId::parse(&r[1])?,
                home: Position::new(number(r, 2, "lat")?, number(r, 3, "lon")?)?,
                address: readable(r, 4, "address", true)?,
                notes: readable(r, 5, "notes", true)?,
                regular_helpers: r[6].split(';').map(str::trim).filter(|s| !s.is_empty()).map(StaffId::parse).collect::<Result<_, _>>()?,
            })
        },
        |r| (r.id.as_str(), &r.municipality),
    )
}

/// Staff for the municipalities `config` has, with their display names (the engine
/// does not need names; the apps do).
pub fn parse_staff(text: &str, config: &EngineConfig) -> Result<Vec<(Staff, String)>> {
    let rows = records(text, STAFF_COLUMNS)?;
    collect(
        rows,
        config,
        |r| {
            let roles = r[3].split(';').map(str::trim).filter(|s| !s.is_empty()).map(parse_role).collect::<Result<Vec<_>, _>>()?;
            Ok((Staff { id: StaffId::parse(&r[0])?, municipality: MunicipalityId::parse(&r[1])?, roles: Roles::of(&roles) }, readable(r, 2, "name", false)?))
        },
        |(s, _)| (s.id.as_str(), &s.municipality),
    )
}

/// Residents and staff read from the store, to be compared with the engine's view.
#[derive(Debug, Default)]
pub struct DirectoryChanges {
    pub residents: Vec<crate::core::Resident>,
    pub staff: Vec<crate::core::Staff>,
    /// The whole device register, when it changed.
    pub devices: Option<Vec<crate::live::devices::Device>>,
}

/// The residents and staff changed at or after `since_ms` (`i64::MIN`: all of them),
/// and the device register if `devices` (it is small, and read whole).
pub async fn read_directory(store: &Store, since_ms: i64, devices: bool) -> Result<DirectoryChanges> {
    Ok(DirectoryChanges {
        residents: store.residents_since(since_ms).await?.into_iter().map(|r| r.entry).collect(),
        staff: store.staff_since(since_ms).await?.into_iter().map(|r| r.entry).collect(),
        devices: if devices { Some(store.devices().await?) } else { None },
    })
}

/// Watches the directory tables off the engine's path: a cheap (count, newest change)
/// probe every `every`, and a read of the changed rows only when the probe moves.
/// The engine task then applies what differs.
/// `seen`: the probe taken before the engine last read the whole directory.
pub async fn watch_directory(store: Store, every: Duration, seen: DirectoryProbe, tx: tokio::sync::mpsc::Sender<DirectoryChanges>) {
    let mut last = Some(seen);
    loop {
        tokio::time::sleep(every).await;
        let probe = match store.directory_probe().await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "directory probe failed");
                continue;
            }
        };
        let Some(prev) = last.replace(probe) else { continue };
        if prev == probe {
            continue;
        }
        // Rows changed at or after the newest change seen before (same-millisecond writes included).
        let since = prev.newest_ms;
        let devices = (prev.devices, prev.devices_newest_ms) != (probe.devices, probe.devices_newest_ms);
        match read_directory(&store, since, devices).await {
            Ok(changes) => {
                if tx.send(changes).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "directory read failed");
                last = Some(prev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> EngineConfig {
        let path = (name != "demo").then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("config/{name}.toml")));
        crate::settings::load(path.as_deref()).unwrap().1
    }

    #[test]
    fn shipped_samples_parse() {
        for (name, text) in BUILTIN {
            let c = config(if name.starts_with("demo") { "demo" } else { "indre-sogn" });
            if name.contains("residents") {
                assert!(parse_residents(text, &c).unwrap().len() >= 10, "{name}");
            } else {
                assert!(parse_staff(text, &c).unwrap().len() >= 4, "{name}");
            }
        }
    }

    #[test]
    fn bad_rows_are_listed_and_nothing_is_imported() {
        let c = config("demo");
        let text =
            "resident_id,municipality,lat,lon,address,notes,regular_helpers\nr1,demo,61.2,7.1,Vegen 1,,s1;s2\nr 2,demo,61.2,7.1,,,\nr3,demo,161,7.1,,,\n";
        let e = parse_residents(text, &c).unwrap_err().to_string();
        assert!(e.contains("2 bad row(s)") && e.contains("line 3") && e.contains("line 4") && e.contains("latitude"), "{e}");
        let e = parse_staff("id,municipality\n", &c).unwrap_err().to_string();
        assert!(e.contains("header must be staff_id,municipality,name,roles"), "{e}");
        let e = parse_staff("staff_id,municipality,name,roles\ns1,demo,Kari,nurse;pilot\n", &c).unwrap_err().to_string();
        assert!(e.contains("unknown role \"pilot\""), "{e}");
        let ok = parse_residents(
            "resident_id,municipality,lat,lon,address,notes,regular_helpers\nr1,demo,61.2,7.1,\"Vegen 1, 6856 Sogndal\",Nøkkelboks,s1;s2\n",
            &c,
        )
        .unwrap();
        assert_eq!(ok[0].address, "Vegen 1, 6856 Sogndal");
        assert_eq!(ok[0].regular_helpers.len(), 2);
    }

    /// What a spreadsheet export gets wrong is each listed by its line, and the rest of
    /// the file is still checked: a row with a field too few or too many, a typo in a
    /// municipality (its residents' alarms could never be routed), an id twice.
    #[test]
    fn short_rows_unknown_municipalities_and_repeated_ids_are_listed_by_line() {
        let c = config("demo");
        let text = "resident_id,municipality,lat,lon,address,notes,regular_helpers\n\
            r1,demo,61.2,7.1,\"Vegen 1,\n6856 Sogndal\",,\n\
            r2,demo,61.2,7.1,,\n\
            r3,dmeo,61.2,7.1,,,\n\
            r4,demo,61.2,7.1,,,\n\
            r1,demo,61.3,7.2,,,\n\
            r5,demo,61.2,7.1,,,,extra\n";
        let e = parse_residents(text, &c).unwrap_err().to_string();
        assert!(e.starts_with("4 bad row(s), nothing imported"), "{e}");
        assert!(e.contains("line 4: 6 fields; the header has 7"), "{e}");
        assert!(e.contains("line 5: municipality \"dmeo\" is not in the configuration (it has demo)"), "{e}");
        assert!(e.contains("line 7: \"r1\" is already on line 2"), "{e}");
        assert!(e.contains("line 8: 8 fields; the header has 7"), "{e}");
        let e = parse_staff("staff_id,municipality,name,roles\ns1,demo,Kari,nurse\ns1,demo,Kari N,nurse\ns2,vik,Ola,nurse\n", &c).unwrap_err().to_string();
        assert!(e.contains("line 3: \"s1\" is already on line 2") && e.contains("line 4: municipality \"vik\""), "{e}");
    }

    /// An address, notes or a name with a character people could not see (a
    /// right-to-left override, a zero-width space) is refused by its line.
    #[test]
    fn text_that_would_read_differently_is_refused_by_line() {
        let c = config("demo");
        let text = "resident_id,municipality,lat,lon,address,notes,regular_helpers\n\
            r1,demo,61.2,7.1,Vegen 1,Nøkkelboks \u{202E}4321,\n\
            r2,demo,61.2,7.1,Vegen\u{200B} 2,,\n\
            r3,demo,61.2,7.1,Vegen 3,\"Hund i huset\nRing på\",\n";
        let e = parse_residents(text, &c).unwrap_err().to_string();
        assert!(e.starts_with("2 bad row(s)"), "{e}");
        assert!(e.contains("line 2: notes contains an invisible formatting character") && e.contains("U+202E"), "{e}");
        assert!(e.contains("line 3: address contains an invisible formatting character") && e.contains("U+200B"), "{e}");
        let e = parse_staff("staff_id,municipality,name,roles\ns1,demo,Kari\u{2066} N,nurse\n", &c).unwrap_err().to_string();
        assert!(e.contains("line 2: name contains an invisible formatting character") && e.contains("U+2066"), "{e}");
    }
}
