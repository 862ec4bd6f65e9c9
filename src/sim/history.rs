//! Alarm history files for `vakt simulate --alarms FILE.csv`, read as a stream.
//!
//! Columns (header required): `alarm_id,raised_at,municipality,resident_id,kind,lat,lon,resolved_by_centre`.
//! `raised_at` is RFC 3339 and the rows must be in time order; `lat`/`lon` may be empty
//! (the resident's home), `resolved_by_centre` may be empty (the scenario's resolve share
//! decides), `true` or `false` (what the centre did with it then).

use std::path::Path;

use super::world::SimAlarm;
use crate::core::{Alarm, AlarmId, AlarmKind, MunicipalityId, Position, ResidentId, Timestamp};

pub const COLUMNS: &[&str] = &["alarm_id", "raised_at", "municipality", "resident_id", "kind", "lat", "lon", "resolved_by_centre"];

/// Opens a history; rows are parsed as they are read (memory does not grow with the file).
pub fn read(path: &Path, start: Timestamp) -> Result<impl Iterator<Item = Result<SimAlarm, String>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(std::io::BufReader::new(file));
    let header: Vec<String> = reader.headers().map_err(|e| e.to_string())?.iter().map(String::from).collect();
    if header != COLUMNS {
        return Err(format!("{}: the header must be {}", path.display(), COLUMNS.join(",")));
    }
    let name = path.display().to_string();
    Ok(reader.into_records().enumerate().map(move |(i, rec)| {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("{name} line {line}: {e}"))?;
        parse(&rec, start).map_err(|e| format!("{name} line {line}: {e}"))
    }))
}

fn parse(r: &csv::StringRecord, start: Timestamp) -> Result<SimAlarm, String> {
    let at = Timestamp::parse_rfc3339(&r[1]).map_err(|e| format!("raised_at: {e}"))?;
    if at < start {
        return Err(format!("raised_at {at} is before the scenario's start {start}"));
    }
    let position = match (&r[5], &r[6]) {
        ("", "") => None,
        (lat, lon) => {
            Some(Position::new(lat.parse().map_err(|_| "lat is not a number")?, lon.parse().map_err(|_| "lon is not a number")?).map_err(|e| e.to_string())?)
        }
    };
    let resolved_by_centre = match &r[7] {
        "" => None,
        "true" => Some(true),
        "false" => Some(false),
        other => return Err(format!("resolved_by_centre must be true, false or empty, not {other:?}")),
    };
    let alarm = Alarm {
        id: AlarmId::parse(&r[0]).map_err(|e| e.to_string())?,
        resident: ResidentId::parse(&r[3]).map_err(|e| e.to_string())?,
        municipality: MunicipalityId::parse(&r[2]).map_err(|e| e.to_string())?,
        kind: AlarmKind::parse(&r[4]).ok_or_else(|| format!("unknown kind {:?}", &r[4]))?,
        priority: None,
        raised_at: at,
        position,
        text: None,
    };
    Ok(SimAlarm { at, alarm, resolved_by_centre })
}
