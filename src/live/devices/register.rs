//! The device register: which device (by its DC-09 account or SCAIP controller id)
//! belongs to which resident, its key, and how often it must be heard.
//!
//! `devices.csv`: `device_id,protocol,account,resident_id,key,heartbeat_secs`, with a
//! header row. `protocol`: `dc09` or `scaip`; `account`: the DC-09 account (3 to 16
//! hex digits) or the SCAIP controller id `cid` (1 to 16 digits); `key`: the DC-09
//! AES key in hex (32, 48 or 64 digits), empty for none; `heartbeat_secs`: the
//! supervision interval the device is set to, empty for an unsupervised device. A file
//! with any bad row is refused whole, with every bad line, as for residents.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::core::ResidentId;

pub const DEVICE_COLUMNS: &[&str] = &["device_id", "protocol", "account", "resident_id", "key", "heartbeat_secs"];

/// The longest device id: it goes into alarm ids, with the protocol and the message's key.
pub const MAX_DEVICE_ID: usize = 40;

/// Supervision intervals vakt takes: from ten seconds to a week.
pub const HEARTBEAT_RANGE: std::ops::RangeInclusive<u64> = 10..=7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Dc09,
    Scaip,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dc09 => "dc09",
            Protocol::Scaip => "scaip",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "dc09" => Some(Protocol::Dc09),
            "scaip" => Some(Protocol::Scaip),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered device.
#[derive(Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub protocol: Protocol,
    /// DC-09: upper-case hex; SCAIP: digits.
    pub account: String,
    pub resident: ResidentId,
    /// The DC-09 AES key (16, 24 or 32 bytes).
    pub key: Option<Vec<u8>>,
    pub heartbeat: Option<Duration>,
}

/// Never prints the key.
impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("protocol", &self.protocol)
            .field("account", &self.account)
            .field("resident", &self.resident)
            .field("key", &self.key.as_ref().map(|_| "(set)"))
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

impl Device {
    /// Checks one row's fields (the key in hex, as in the file and the store).
    pub fn new(id: &str, protocol: &str, account: &str, resident: &str, key_hex: &str, heartbeat_secs: Option<u64>) -> Result<Device> {
        if id.is_empty() || id.len() > MAX_DEVICE_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            bail!("device_id {id:?} must be 1 to {MAX_DEVICE_ID} ASCII letters, digits and - _ .");
        }
        let Some(protocol) = Protocol::parse(protocol) else { bail!("protocol {protocol:?} is not dc09 or scaip") };
        let account = match protocol {
            Protocol::Dc09 if (3..=16).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_hexdigit()) => account.to_ascii_uppercase(),
            Protocol::Dc09 => bail!("a DC-09 account is 3 to 16 hex digits, not {account:?}"),
            Protocol::Scaip if (1..=16).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_digit()) => account.to_owned(),
            Protocol::Scaip => bail!("a SCAIP controller id (cid) is 1 to 16 digits, not {account:?}"),
        };
        let key = match (protocol, key_hex) {
            (_, "") => None,
            (Protocol::Scaip, _) => bail!("a SCAIP device has no key here (SCAIP is secured by SIP over TLS); leave the key empty"),
            (Protocol::Dc09, hex) => match super::dc09::decode_hex(hex) {
                Some(k) if matches!(k.len(), 16 | 24 | 32) => Some(k),
                _ => bail!("the key must be 32, 48 or 64 hex digits (AES-128, -192 or -256)"),
            },
        };
        let heartbeat = match heartbeat_secs {
            None => None,
            Some(s) if HEARTBEAT_RANGE.contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => bail!("heartbeat_secs {s} is not from {} to {}", HEARTBEAT_RANGE.start(), HEARTBEAT_RANGE.end()),
        };
        Ok(Device { id: id.to_owned(), protocol, account, resident: ResidentId::parse(resident)?, key, heartbeat })
    }

    pub fn key_hex(&self) -> String {
        self.key.as_ref().map(|k| k.iter().map(|b| format!("{b:02X}")).collect()).unwrap_or_default()
    }
}

/// Every registered device, by id and by (protocol, account).
#[derive(Debug, Default, Clone)]
pub struct Register {
    by_id: HashMap<String, Arc<Device>>,
    by_account: HashMap<(Protocol, String), Arc<Device>>,
}

impl Register {
    pub fn new(devices: impl IntoIterator<Item = Device>) -> Register {
        let mut r = Register::default();
        for d in devices {
            let d = Arc::new(d);
            if let Some(old) = r.by_id.insert(d.id.clone(), d.clone()) {
                r.by_account.remove(&(old.protocol, old.account.clone()));
            }
            r.by_account.insert((d.protocol, d.account.clone()), d);
        }
        r
    }

    /// The device with this account (DC-09: any case of hex).
    pub fn by_account(&self, protocol: Protocol, account: &str) -> Option<&Arc<Device>> {
        self.by_account.get(&(protocol, account.to_ascii_uppercase()))
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Device>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Reads `devices.csv`; every bad row is listed by its line, and then nothing is taken.
/// A device id, or a protocol's account, twice is a bad row.
pub fn parse_devices(text: &str) -> Result<Vec<Device>> {
    let rows = crate::live::directory::records(text, DEVICE_COLUMNS)?;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut accounts: HashMap<(Protocol, String), u64> = HashMap::new();
    for (line, rec) in rows {
        let parsed = rec.map_err(anyhow::Error::msg).and_then(|r| {
            let heartbeat = match &r[5] {
                "" => None,
                s => Some(s.parse::<u64>().map_err(|_| anyhow::anyhow!("heartbeat_secs {s:?} is not a whole number of seconds"))?),
            };
            let d = Device::new(&r[0], &r[1], &r[2], &r[3], &r[4], heartbeat)?;
            if let Some(earlier) = ids.insert(d.id.clone(), line) {
                bail!("device {:?} is already on line {earlier}", d.id);
            }
            if let Some(earlier) = accounts.insert((d.protocol, d.account.clone()), line) {
                bail!("{} account {} is already on line {earlier}", d.protocol, d.account);
            }
            Ok(d)
        });
        match parsed {
            Ok(d) => ok.push(d),
            Err(e) => errors.push(format!("line {line}: {e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{} bad row(s), nothing imported:\n  {}", errors.len(), errors.join("\n  "));
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_and_bad_ones_listed_by_line() {
        let good = "device_id,protocol,account,resident_id,key,heartbeat_secs\n\
                    alarm-1,dc09,12ab,r-1,000102030405060708090A0B0C0D0E0F,60\n\
                    careium-7,scaip,4712,r-2,,\n";
        let devices = parse_devices(good).unwrap();
        assert_eq!(devices[0].account, "12AB");
        assert_eq!(devices[0].key.as_ref().map(Vec::len), Some(16));
        assert_eq!(devices[1].heartbeat, None);
        let register = Register::new(devices);
        assert_eq!(register.by_account(Protocol::Dc09, "12aB").map(|d| d.id.as_str()), Some("alarm-1"));
        assert!(register.by_account(Protocol::Scaip, "12AB").is_none());
        assert!(!format!("{:?}", register.get("alarm-1").unwrap()).contains("0001"), "the key is not printed");

        let bad = "device_id,protocol,account,resident_id,key,heartbeat_secs\n\
                   a,sia,12,r-1,,\n\
                   b,dc09,XYZ,r-1,,\n\
                   c,dc09,123,r-1,abcd,\n\
                   d,scaip,4712,r-2,,5\n\
                   e,scaip,4712,r-2,,\n\
                   e,scaip,4713,r-2,,\n\
                   f,scaip,4714,r 2,,\n";
        let err = parse_devices(bad).unwrap_err().to_string();
        for line in [
            "line 2: protocol",
            "line 3: a DC-09 account",
            "line 4: the key",
            "line 5: heartbeat_secs 5",
            "line 7: device \"e\" is already",
            "line 8: invalid resident",
        ] {
            assert!(err.contains(line), "{line} in {err}");
        }
        assert!(!err.contains("line 6:"), "{err}");
    }
}
