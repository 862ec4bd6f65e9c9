//! SCAIP (SS 91100) messages: the device's `<mrq>` read, vakt's `<mrs>` made, and
//! device types and status codes mapped to vakt's kinds (pure: no I/O).

use crate::core::{AlarmKind, Position, Priority};

/// The largest `<mrq>` vakt reads (a SIP body; the fields are short).
pub const MAX_BODY: usize = 8 * 1024;

/// A message request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mrq {
    pub reference: String,
    /// `ME` message, `RE` reset, `IN` information, `PI` heartbeat (default `ME`).
    pub message_type: String,
    pub controller: String,
    pub device_type: String,
    pub device_id: Option<String>,
    pub device_text: Option<String>,
    pub status: Option<String>,
    pub status_text: Option<String>,
    /// 0–9, 0 the highest.
    pub priority: Option<u8>,
    pub location_text: Option<String>,
    /// `lge`'s `geo`: "lat,lon" in decimal degrees.
    pub geo: Option<String>,
    /// Call handling: `1` the device waits for a call back.
    pub call_back: bool,
}

/// The `<mrs>` status numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snu {
    Ok = 0,
    TooLong = 1,
    InvalidFormat = 2,
    WrongData = 3,
    NotTreated = 5,
    Busy = 6,
    MandatoryMissing = 7,
}

/// Why an `<mrq>` was refused: its status number and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub snu: Snu,
    pub why: String,
    /// The `ref`, when it could be read (the `<mrs>` carries it back).
    pub reference: Option<String>,
}

fn refused(snu: Snu, why: impl Into<String>, reference: Option<&str>) -> Refused {
    Refused { snu, why: why.into(), reference: reference.map(str::to_owned) }
}

/// Reads an `<mrq>` document (`body` is at most a SIP message's size; one over
/// [`MAX_BODY`] is refused as too long, with its `ref` when that can be read).
pub fn parse_mrq(body: &[u8]) -> Result<Mrq, Refused> {
    let too_long = (body.len() > MAX_BODY).then(|| format!("{} bytes; vakt reads at most {MAX_BODY}", body.len()));
    let fail = |snu, why: String| refused(if too_long.is_some() { Snu::TooLong } else { snu }, too_long.clone().unwrap_or(why), None);
    let text = std::str::from_utf8(body).map_err(|_| fail(Snu::InvalidFormat, "the body is not UTF-8".into()))?;
    let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: 200, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| fail(Snu::InvalidFormat, format!("not XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "mrq" {
        return Err(fail(Snu::InvalidFormat, format!("the document is <{}>, not <mrq>", root.tag_name().name())));
    }
    let field = |name: &str| -> Option<String> {
        root.children().find(|n| n.is_element() && n.tag_name().name() == name).and_then(|n| n.text()).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    };
    let reference = field("ref");
    let r = reference.as_deref();
    let reference = reference.clone().ok_or_else(|| fail(Snu::MandatoryMissing, "no <ref>".into()))?;
    if reference.len() > 16 || !reference.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(fail(Snu::WrongData, "<ref> is 1 to 16 letters and digits".into()));
    }
    if let Some(why) = too_long {
        return Err(refused(Snu::TooLong, why, r));
    }
    let digits = |v: &str, most: usize| !v.is_empty() && v.len() <= most && v.bytes().all(|b| b.is_ascii_digit());
    let controller = field("cid").ok_or_else(|| refused(Snu::MandatoryMissing, "no <cid>", r))?;
    if !digits(&controller, 16) {
        return Err(refused(Snu::WrongData, "<cid> is 1 to 16 digits", r));
    }
    let message_type = field("mty").unwrap_or_else(|| "ME".into());
    if !matches!(message_type.as_str(), "ME" | "RE" | "IN" | "PI") {
        return Err(refused(Snu::WrongData, format!("<mty> {message_type:?} is not ME, RE, IN or PI"), r));
    }
    // A heartbeat may leave the device type out.
    let device_type = match field("dty") {
        Some(d) if digits(&d, 4) => format!("{:0>4}", d),
        Some(_) => return Err(refused(Snu::WrongData, "<dty> is 1 to 4 digits", r)),
        None if message_type == "PI" => String::new(),
        None => return Err(refused(Snu::MandatoryMissing, "no <dty>", r)),
    };
    let status = match field("stc") {
        Some(s) if digits(&s, 4) => Some(format!("{:0>4}", s)),
        Some(_) => return Err(refused(Snu::WrongData, "<stc> is 1 to 4 digits", r)),
        None => None,
    };
    let priority = match field("pri") {
        Some(p) if digits(&p, 1) => Some(p.parse().expect("a digit")),
        Some(_) => return Err(refused(Snu::WrongData, "<pri> is one digit", r)),
        None => None,
    };
    let geo = root
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "lge")
        .and_then(|lge| lge.children().find(|n| n.is_element() && n.tag_name().name() == "geo"))
        .and_then(|g| g.text())
        .map(|t| t.trim().to_owned());
    let bounded = |name: &str, most: usize| -> Result<Option<String>, Refused> {
        match field(name) {
            Some(v) if v.chars().count() > most => Err(refused(Snu::TooLong, format!("<{name}> is longer than {most} characters"), r)),
            Some(v) if crate::core::text::refused(&v, false).is_some() => {
                Err(refused(Snu::WrongData, format!("<{name}> holds a character people cannot see"), r))
            }
            v => Ok(v),
        }
    };
    Ok(Mrq {
        reference,
        message_type,
        controller,
        device_type,
        device_id: bounded("did", 8)?,
        device_text: bounded("dte", 32)?,
        status,
        status_text: bounded("stt", 32)?,
        priority,
        location_text: bounded("lte", 32)?,
        geo,
        call_back: field("cha").as_deref() == Some("1"),
    })
}

/// The `<mrs>` for a request (`reference`), with its status number and text.
pub fn mrs(reference: Option<&str>, snu: Snu, text: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let reference = reference.map(|r| format!("<ref>{}</ref>", escape(r))).unwrap_or_default();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrs>{reference}<snu>{}</snu><ste>{}</ste></mrs>", snu as u8, escape(text))
}

/// What an `<mrq>` means for vakt.
#[derive(Debug, Clone, PartialEq)]
pub enum Meaning {
    Alarm {
        kind: AlarmKind,
        priority: Option<Priority>,
        position: Option<Position>,
        text: String,
    },
    Cancel,
    /// A heartbeat, a restore, an information message.
    Heard(&'static str),
}

impl Mrq {
    /// docs/devices.md's tables: the status code first (battery, links, cancel), then
    /// the device type. `Err`: neither is one vakt maps (answered `snu` 3).
    pub fn meaning(&self) -> Result<Meaning, String> {
        if self.message_type == "PI" {
            return Ok(Meaning::Heard("heartbeat"));
        }
        if self.message_type == "RE" {
            return Ok(Meaning::Heard("reset"));
        }
        let status = self.status.as_deref().unwrap_or("");
        let by_status = match status {
            "0019" => return Ok(Meaning::Cancel),
            "0015" | "0083" | "0086" | "0091" | "0094" | "0102" | "0103" | "0112" | "0113" | "0114" | "0115" | "0116" | "0124" => {
                return Ok(Meaning::Heard("restore or test"));
            }
            "0014" | "0016" => Some(AlarmKind::BatteryLow),
            "0023" | "0024" | "0025" | "0026" | "0027" | "0123" => Some(AlarmKind::ConnectionLost),
            "0081" => Some(AlarmKind::Medication),
            "0085" => Some(AlarmKind::PowerFailure),
            _ => None,
        };
        let kind = match by_status {
            Some(k) => k,
            None => match self.device_type.as_str() {
                "0003" | "0004" | "0006" | "0007" => AlarmKind::Safety,
                "0005" | "0017" => AlarmKind::Fall,
                "0030" => AlarmKind::ManDown,
                "0010" => AlarmKind::Assistance,
                "0011" => AlarmKind::Medication,
                "0012" | "0013" | "0044" => AlarmKind::Bed,
                "0014" | "0028" | "0029" => AlarmKind::Door,
                "0015" | "0051" => AlarmKind::Wandering,
                "0021" | "0023" | "0025" | "0026" | "0033" | "0037" | "0047" => AlarmKind::Smoke,
                "0032" => AlarmKind::ConnectionLost,
                "0041" => AlarmKind::PowerFailure,
                _ if self.message_type == "IN" => return Ok(Meaning::Heard("information")),
                d => {
                    return Err(format!(
                        "device type {d} with status {} is not one vakt maps (docs/devices.md)",
                        if status.is_empty() { "none" } else { status }
                    ));
                }
            },
        };
        // SCAIP's 0 is the highest; vakt takes the kind's own unless the device says 0–1.
        let priority = match self.priority {
            Some(0 | 1) => Some(Priority::Critical),
            _ => None,
        };
        let position = self.geo.as_deref().and_then(|g| {
            let (lat, lon) = g.split_once(',')?;
            Position::new(lat.trim().parse().ok()?, lon.trim().parse().ok()?).ok()
        });
        let mut text = vec![format!("SCAIP device type {}", self.device_type)];
        text.extend(self.status.as_ref().map(|s| format!("status {s}")));
        text.extend(self.device_text.clone());
        text.extend(self.status_text.clone());
        text.extend(self.location_text.as_ref().map(|l| format!("at {l}")));
        if self.call_back {
            text.push("the device waits for a call back".into());
        }
        Ok(Meaning::Alarm { kind, priority, position, text: text.join("; ") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_alarm_reads_with_its_position() {
        let m = parse_mrq(b"<?xml version=\"1.0\"?><mrq><ref>A17</ref><ver>01.00</ver><mty>ME</mty><cid>4712</cid><dty>0005</dty><stc>0009</stc><lge><geo>61.23,7.10</geo></lge><cha>1</cha></mrq>").unwrap();
        let Meaning::Alarm { kind, position, text, .. } = m.meaning().unwrap() else { panic!("an alarm") };
        assert_eq!(kind, AlarmKind::Fall);
        assert_eq!(position, Some(Position::new(61.23, 7.10).unwrap()));
        assert!(text.contains("call back"), "{text}");
    }

    #[test]
    fn heartbeats_cancels_and_unknown_types() {
        assert_eq!(parse_mrq(b"<mrq><ref>1</ref><mty>PI</mty><cid>4712</cid></mrq>").unwrap().meaning(), Ok(Meaning::Heard("heartbeat")));
        assert_eq!(parse_mrq(b"<mrq><ref>2</ref><cid>4712</cid><dty>0003</dty><stc>0019</stc></mrq>").unwrap().meaning(), Ok(Meaning::Cancel));
        assert!(parse_mrq(b"<mrq><ref>3</ref><cid>4712</cid><dty>0099</dty></mrq>").unwrap().meaning().is_err());
    }

    #[test]
    fn bad_requests_get_their_status_number() {
        assert_eq!(parse_mrq(b"<mrq><cid>1</cid></mrq>").unwrap_err().snu, Snu::MandatoryMissing);
        let e = parse_mrq(b"<mrq><ref>R1</ref><dty>0003</dty></mrq>").unwrap_err();
        assert_eq!((e.snu, e.reference.as_deref()), (Snu::MandatoryMissing, Some("R1")));
        assert_eq!(parse_mrq(b"<mrq><ref>R1</ref>").unwrap_err().snu, Snu::InvalidFormat);
        assert_eq!(parse_mrq(b"<!DOCTYPE x [<!ENTITY a 'b'>]><mrq/>").unwrap_err().snu, Snu::InvalidFormat, "no DTDs");
        assert_eq!(parse_mrq(&vec![b' '; MAX_BODY + 1]).unwrap_err().snu, Snu::TooLong);
        let long = format!("<mrq><ref>L1</ref><cid>1</cid><dty>0003</dty><dte>{}</dte></mrq>", "x".repeat(MAX_BODY));
        let e = parse_mrq(long.as_bytes()).unwrap_err();
        assert_eq!((e.snu, e.reference.as_deref()), (Snu::TooLong, Some("L1")), "too long, its ref told");
        assert!(mrs(Some("R1"), Snu::NotTreated, "store <down>").contains("<ref>R1</ref><snu>5</snu><ste>store &lt;down&gt;</ste>"));
    }
}
