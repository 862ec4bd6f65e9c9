//! SIA DC-09 frames: read, checked and answered (pure: no I/O).
//!
//! A frame: `LF` · CRC (4 hex) · length (`0` + 3 hex) · `"TOKEN"` · sequence (4
//! digits) · `R`receiver (optional) · `L`line · `#`account · `[`data`]` · extended data
//! `[x…]` (optional) · `_HH:MM:SS,MM-DD-YYYY` timestamp (optional; required when
//! encrypted) · `CR`. The CRC (CRC-16/ARC) and the length cover the part from the first
//! `"` to before `CR`. A `*` before the token: everything after `[` is AES-CBC (zero
//! IV) in hex, with the device's key; the clear text starts with random padding, ended
//! by `|` when there is data.
//!
//! The answers: `ACK` (echoing sequence, receiver, line and account; encrypted when the
//! message was), `NAK` (the receiver's own time, never encrypted: a timestamp outside
//! the window) and `DUH` (a message the receiver cannot process).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::core::{AlarmKind, Priority, Timestamp};

/// The longest frame vakt reads: the length field's 3 hex digits say at most 4,095
/// bytes after the header, and a frame has 10 bytes around them.
pub const MAX_FRAME: usize = 4095 + 10;

/// A frame as read, before its account is looked up (decryption needs the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub encrypted: bool,
    pub token: String,
    pub seq: String,
    pub receiver: Option<String>,
    pub line: String,
    /// Upper-case hex, as sent.
    pub account: String,
    /// From `[` to the end (hex cipher text when encrypted).
    body: String,
}

/// CRC-16/ARC (reflected polynomial 0xA001, initial 0), as DC-09 uses.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// Reads a whole frame (`LF` to `CR`, both included); `Err`: why it is not one whose
/// header can be trusted (no answer can be addressed to it).
pub fn parse_frame(frame: &[u8]) -> Result<Frame, String> {
    let garbled = |why: &str| why.to_owned();
    if frame.len() < 12 || frame[0] != b'\n' || frame[frame.len() - 1] != b'\r' {
        return Err(garbled("not a DC-09 frame (LF, CRC, length, \"ID\" ... CR)"));
    }
    let head = std::str::from_utf8(&frame[1..9]).map_err(|_| garbled("the CRC and length are not hex"))?;
    let (crc, len) = (u16::from_str_radix(&head[..4], 16), usize::from_str_radix(&head[4..], 16));
    let (Ok(crc), Ok(len)) = (crc, len) else { return Err(garbled("the CRC and length are not hex")) };
    let body = &frame[9..frame.len() - 1];
    if body.len() != len {
        return Err(garbled(&format!("the length field says {len} bytes, the frame has {}", body.len())));
    }
    if crc16(body) != crc {
        return Err(garbled(&format!("CRC mismatch (the frame says {crc:04X}, its bytes give {:04X})", crc16(body))));
    }
    let text = std::str::from_utf8(body).map_err(|_| garbled("the frame is not ASCII"))?;
    if !text.is_ascii() || text.bytes().any(|b| b == b'\n' || b == b'\r') {
        return Err(garbled("the frame is not ASCII"));
    }
    let rest = text.strip_prefix('"').ok_or_else(|| garbled("no \"ID\" token"))?;
    let (token, rest) = rest.split_once('"').ok_or_else(|| garbled("no \"ID\" token"))?;
    let (encrypted, token) = match token.strip_prefix('*') {
        Some(t) => (true, t),
        None => (false, token),
    };
    if rest.len() < 4 || !rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return Err(garbled("no 4-digit sequence number"));
    }
    let (seq, rest) = rest.split_at(4);
    let data_at = rest.find('[').ok_or_else(|| garbled("no [data]"))?;
    let (header, body) = rest.split_at(data_at);
    let (before_account, account) = header.split_once('#').ok_or_else(|| garbled("no #account"))?;
    let (receiver, line) = match before_account.split_once('L') {
        Some((r, l)) => (r, l),
        None => return Err(garbled("no Lline")),
    };
    let receiver = match receiver.strip_prefix('R') {
        Some(r) => Some(r.to_owned()),
        None if receiver.is_empty() => None,
        None => return Err(garbled("unreadable receiver field")),
    };
    let hex = |s: &str, most: usize| !s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(line, 6) || receiver.as_deref().is_some_and(|r| !hex(r, 6)) {
        return Err(garbled("receiver and line must be 1 to 6 hex digits"));
    }
    if !hex(account, 16) || account.len() < 3 {
        return Err(garbled("the account must be 3 to 16 hex digits"));
    }
    Ok(Frame {
        encrypted,
        token: token.to_owned(),
        seq: seq.to_owned(),
        receiver,
        line: line.to_owned(),
        account: account.to_ascii_uppercase(),
        body: body.to_owned(),
    })
}

/// A frame's content, read with the device's key where it is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The mandatory data, without its brackets (empty for `NULL`).
    pub data: String,
    /// The extended data fields, without their brackets.
    pub extended: Vec<String>,
    /// The frame's timestamp (UTC).
    pub timestamp: Option<Timestamp>,
}

impl Frame {
    /// The content; `key` is the device's AES key (16, 24 or 32 bytes) for an encrypted
    /// frame. `Err`: why it cannot be read (a wrong key reads as garbage).
    pub fn content(&self, key: Option<&[u8]>) -> Result<Content, String> {
        let after_bracket = self.body.strip_prefix('[').ok_or("no [data]")?;
        let clear = if self.encrypted {
            let key = key.ok_or("the frame is encrypted and the device has no key in the register")?;
            decrypt(key, after_bracket)?
        } else {
            after_bracket.to_owned()
        };
        let end = clear.find(']').ok_or("no ] after the data")?;
        let data = clear[..end].to_owned();
        let mut rest = &clear[end + 1..];
        let mut extended = Vec::new();
        while let Some(x) = rest.strip_prefix('[') {
            let close = x.find(']').ok_or("an extended data field without its ]")?;
            extended.push(x[..close].to_owned());
            rest = &x[close + 1..];
        }
        let timestamp = match rest.strip_prefix('_') {
            Some(ts) => Some(parse_timestamp(ts).ok_or_else(|| format!("unreadable timestamp {ts:?}"))?),
            None if rest.is_empty() => None,
            None => return Err(format!("unexpected {rest:?} after the data")),
        };
        if self.encrypted && timestamp.is_none() {
            return Err("an encrypted frame must carry a timestamp".into());
        }
        if data.chars().chain(extended.iter().flat_map(|x| x.chars())).any(|c| !c.is_ascii() || c.is_ascii_control()) {
            return Err("the data is not printable ASCII: wrong key?".into());
        }
        Ok(Content { data, extended, timestamp })
    }

    /// The answer to this frame: `ACK`, with the same sequence, receiver, line and
    /// account, encrypted with `key` when the frame was.
    pub fn ack(&self, key: Option<&[u8]>, now: Timestamp) -> Vec<u8> {
        self.answer("ACK", if self.encrypted { key } else { None }, now, None)
    }

    /// `DUH`: vakt cannot process the frame (never encrypted).
    pub fn duh(&self, now: Timestamp) -> Vec<u8> {
        self.answer("DUH", None, now, None)
    }

    /// `NAK`, with vakt's time so that the sender can set its clock (never encrypted).
    pub fn nak(&self, now: Timestamp) -> Vec<u8> {
        self.answer("NAK", None, now, Some(now))
    }

    fn answer(&self, token: &str, key: Option<&[u8]>, now: Timestamp, stamp: Option<Timestamp>) -> Vec<u8> {
        let receiver = self.receiver.as_ref().map(|r| format!("R{r}")).unwrap_or_default();
        let seq = if token == "NAK" { "0000" } else { self.seq.as_str() };
        let star = if key.is_some() { "*" } else { "" };
        let mut body = format!("\"{star}{token}\"{seq}{receiver}L{}#{}[", self.line, self.account);
        match key {
            Some(key) => body.push_str(&encrypt(key, &format!("]_{}", format_timestamp(now)))),
            None => {
                body.push(']');
                if let Some(t) = stamp {
                    body.push('_');
                    body.push_str(&format_timestamp(t));
                }
            }
        }
        frame(&body)
    }
}

/// `LF` CRC length body `CR`.
pub fn frame(body: &str) -> Vec<u8> {
    let mut out = format!("\n{:04X}0{:03X}", crc16(body.as_bytes()), body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out.push(b'\r');
    out
}

type Enc<C> = cbc::Encryptor<C>;
type Dec<C> = cbc::Decryptor<C>;

/// AES-CBC with a zero IV over whole blocks; the key's length chooses AES-128, -192 or -256.
/// Returns the clear text after its padding: the data, `]` and what follows.
fn decrypt(key: &[u8], hex: &str) -> Result<String, String> {
    let bytes = decode_hex(hex).ok_or("the encrypted data is not hex")?;
    if bytes.is_empty() || bytes.len() % 16 != 0 {
        return Err("the encrypted data is not whole AES blocks".into());
    }
    let iv = [0u8; 16];
    let mut bl: Vec<aes::Block> = bytes.chunks(16).map(|c| *aes::Block::from_slice(c)).collect();
    match key.len() {
        16 => Dec::<aes::Aes128>::new_from_slices(key, &iv).map_err(|e| e.to_string())?.decrypt_blocks_mut(&mut bl),
        24 => Dec::<aes::Aes192>::new_from_slices(key, &iv).map_err(|e| e.to_string())?.decrypt_blocks_mut(&mut bl),
        32 => Dec::<aes::Aes256>::new_from_slices(key, &iv).map_err(|e| e.to_string())?.decrypt_blocks_mut(&mut bl),
        n => return Err(format!("an AES key has 16, 24 or 32 bytes, not {n}")),
    }
    let clear: Vec<u8> = bl.iter().flat_map(|b| b.iter().copied()).collect();
    // The pad may hold any byte but '|', '[' and ']', and ends with '|' when data
    // follows; with none (a NULL), the ']' after the empty data ends it.
    let end = clear.iter().position(|&b| b == b'|' || b == b']').ok_or("no data after the padding: wrong key?")?;
    let start = if clear[end] == b'|' { end + 1 } else { end };
    Ok(std::str::from_utf8(&clear[start..]).map_err(|_| "the data is not ASCII: wrong key?")?.to_owned())
}

/// Pads `clear` at the front to whole blocks (at least 16 bytes of padding, none of
/// them '|', '[' or ']') and encrypts it; hex, upper case.
fn encrypt(key: &[u8], clear: &str) -> String {
    let pad_len = 16 + (16 - clear.len() % 16) % 16;
    let mut random = vec![0u8; pad_len];
    let _ = getrandom::getrandom(&mut random);
    let mut bytes: Vec<u8> = random.iter().map(|b| if matches!(b, b'|' | b'[' | b']') { b'0' } else { *b }).collect();
    bytes.extend_from_slice(clear.as_bytes());
    let iv = [0u8; 16];
    let mut bl: Vec<aes::Block> = bytes.chunks(16).map(|c| *aes::Block::from_slice(c)).collect();
    match key.len() {
        16 => Enc::<aes::Aes128>::new_from_slices(key, &iv).expect("key length checked").encrypt_blocks_mut(&mut bl),
        24 => Enc::<aes::Aes192>::new_from_slices(key, &iv).expect("key length checked").encrypt_blocks_mut(&mut bl),
        _ => Enc::<aes::Aes256>::new_from_slices(key, &iv).expect("key length checked").encrypt_blocks_mut(&mut bl),
    }
    bl.iter().flat_map(|b| b.iter()).map(|b| format!("{b:02X}")).collect()
}

pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// `HH:MM:SS,MM-DD-YYYY`, UTC.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 19 || b[2] != b':' || b[5] != b':' || b[8] != b',' || b[11] != b'-' || b[14] != b'-' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r.clone()).filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    Timestamp::from_utc(n(15..19)?, n(9..11)?, n(12..14)?, n(0..2)?, n(3..5)?, n(6..8)?)
}

pub fn format_timestamp(t: Timestamp) -> String {
    let (y, mo, d, h, mi, s) = t.utc();
    format!("{h:02}:{mi:02}:{s:02},{mo:02}-{d:02}-{y:04}")
}

/// What a DC-09 event means for vakt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// An alarm of this kind (its priority: the kind's unless given).
    Alarm(AlarmKind, Option<Priority>),
    /// The resident's alarm is cancelled ("false alarm", a cancel by the user).
    Cancel,
    /// A sign of life: a periodic test, a restore, a status report.
    Heard(&'static str),
}

/// An event read from the data: its code as sent (for the alarm's id and text), and
/// what it means. `None`: vakt does not know the code (answered `DUH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub code: String,
    pub zone: String,
    pub meaning: Meaning,
    pub text: String,
}

/// Contact ID (`ADM-CID`, SIA DC-05): `#acct|QEEE GG ZZZ`. Q: 1 new event, 3 restore,
/// 6 status report.
pub fn contact_id(data: &str) -> Result<Event, String> {
    let block = data.rsplit('|').next().unwrap_or(data).trim();
    let parts: Vec<&str> = block.split(' ').collect();
    let [qe, group, zone] = parts.as_slice() else { return Err(format!("a Contact ID event is QEEE GG ZZZ, not {block:?}")) };
    if qe.len() != 4 || group.len() != 2 || zone.len() != 3 || !block.bytes().all(|b| b.is_ascii_hexdigit() || b == b' ') {
        return Err(format!("a Contact ID event is QEEE GG ZZZ, not {block:?}"));
    }
    let (q, code) = qe.split_at(1);
    let meaning = match (q, code) {
        ("3", _) | ("6", _) => Meaning::Heard("restore or status report"),
        ("1", c) => match contact_id_meaning(c) {
            Some(m) => m,
            None => return Err(format!("Contact ID event {c} is not one vakt maps (docs/devices.md)")),
        },
        (q, _) => return Err(format!("Contact ID qualifier {q} is not 1 (new), 3 (restore) or 6 (status)")),
    };
    Ok(Event { code: code.to_owned(), zone: zone.to_string(), text: format!("Contact ID {q}{code}, group {group}, zone {zone}"), meaning })
}

/// docs/devices.md's Contact ID table.
fn contact_id_meaning(code: &str) -> Option<Meaning> {
    use AlarmKind::*;
    let alarm = |k| Some(Meaning::Alarm(k, None));
    match code {
        "100" | "101" => alarm(Safety),
        "102" => alarm(HeartbeatMissed),
        "103" => alarm(Fall),
        "110" | "111" | "112" | "113" | "114" | "115" | "116" | "117" => alarm(Smoke),
        "120" | "121" | "122" | "123" => Some(Meaning::Alarm(Safety, Some(Priority::Critical))),
        "130" | "131" | "132" | "133" | "134" => alarm(Door),
        "301" | "342" => alarm(PowerFailure),
        "302" | "309" | "311" | "338" | "384" => alarm(BatteryLow),
        "350" | "351" | "352" | "353" | "354" | "355" | "356" => alarm(ConnectionLost),
        "406" => Some(Meaning::Cancel),
        "602" | "603" | "608" => Some(Meaning::Heard("periodic test")),
        _ => None,
    }
}

/// SIA DC-03 (`SIA-DCS`): `#acct|Nri01/FA129` blocks; each two-letter event code is
/// followed by its zone or user number. The first code vakt maps wins; an alarm wins
/// over a sign of life.
pub fn sia_dcs(data: &str) -> Result<Event, String> {
    let mut found: Vec<Event> = Vec::new();
    let mut codes = Vec::new();
    for block in data.split('|').filter(|b| !b.starts_with('#')) {
        let Some(rest) = block.strip_prefix('N').or_else(|| block.strip_prefix('O')) else { continue };
        for element in rest.split('/') {
            let b = element.as_bytes();
            let Some(at) = (0..b.len().saturating_sub(1)).find(|&i| b[i].is_ascii_uppercase() && b[i + 1].is_ascii_uppercase()) else { continue };
            let code = &element[at..at + 2];
            let zone: String = element[at + 2..].chars().take_while(char::is_ascii_alphanumeric).collect();
            codes.push(code.to_owned());
            if let Some(meaning) = dc03_meaning(code) {
                found.push(Event { code: code.to_owned(), zone: zone.clone(), text: format!("SIA {code}{zone}"), meaning });
            }
        }
    }
    let best = found.iter().position(|e| matches!(e.meaning, Meaning::Alarm(..))).or((!found.is_empty()).then_some(0));
    match best {
        Some(i) => Ok(found.swap_remove(i)),
        None if codes.is_empty() => Err(format!("no SIA event code in {data:?}")),
        None => Err(format!("SIA event code(s) {} not among those vakt maps (docs/devices.md)", codes.join(", "))),
    }
}

/// docs/devices.md's SIA DC-03 table.
fn dc03_meaning(code: &str) -> Option<Meaning> {
    use AlarmKind::*;
    let alarm = |k| Some(Meaning::Alarm(k, None));
    match code {
        "MA" | "QA" => alarm(Safety),
        "HA" | "PA" => Some(Meaning::Alarm(Safety, Some(Priority::Critical))),
        "FA" | "GA" | "KA" => alarm(Smoke),
        "BA" | "DF" => alarm(Door),
        "YT" | "XT" => alarm(BatteryLow),
        "AT" => alarm(PowerFailure),
        "YC" | "YS" | "NT" => alarm(ConnectionLost),
        "OC" | "BC" => Some(Meaning::Cancel),
        "RP" | "RX" | "RY" | "MR" | "MH" | "FR" | "HR" | "YR" | "YK" | "AR" | "NR" | "XR" | "BR" | "QR" => Some(Meaning::Heard("test or restore")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_crc16_arc() {
        // CRC-16/ARC's check value.
        assert_eq!(crc16(b"123456789"), 0xBB3D);
    }

    #[test]
    fn reads_the_documented_example_frame() {
        let f = parse_frame(b"\n8C860043\"SIA-DCS\"9876R579BDFL789ABC#123456A[#123456A|NFA129][M1234567890AB]\r").unwrap();
        assert_eq!(
            (f.token.as_str(), f.seq.as_str(), f.receiver.as_deref(), f.line.as_str(), f.account.as_str()),
            ("SIA-DCS", "9876", Some("579BDF"), "789ABC", "123456A")
        );
        let c = f.content(None).unwrap();
        assert_eq!(c.data, "#123456A|NFA129");
        assert_eq!(c.extended, ["M1234567890AB"]);
        let e = sia_dcs(&c.data).unwrap();
        assert_eq!((e.code.as_str(), e.zone.as_str(), e.meaning), ("FA", "129", Meaning::Alarm(AlarmKind::Smoke, None)));
    }

    #[test]
    fn encrypted_answers_read_back_with_the_key() {
        let key = decode_hex("850CBA22F7DD4F033405DA83E4C5BAE9").unwrap();
        let now = Timestamp::from_secs(1_765_000_000);
        let body = format!("\"*ADM-CID\"0042L0#1234[{}", encrypt(&key, &format!("|#1234|1101 01 015]_{}", format_timestamp(now))));
        let f = parse_frame(&frame(&body)).unwrap();
        let c = f.content(Some(&key)).unwrap();
        assert_eq!((c.data.as_str(), c.timestamp), ("#1234|1101 01 015", Some(now)));
        assert!(f.content(Some(&[7u8; 16])).is_err(), "a wrong key does not read");
        let ack = parse_frame(&f.ack(Some(&key), now)).unwrap();
        assert_eq!((ack.token.as_str(), ack.seq.as_str(), ack.account.as_str(), ack.encrypted), ("ACK", "0042", "1234", true));
        assert_eq!(ack.content(Some(&key)).unwrap().timestamp, Some(now));
    }

    #[test]
    fn every_aes_key_length_reads_its_own_frames() {
        let now = Timestamp::from_secs(1_765_000_000);
        for len in [16, 24, 32] {
            let key: Vec<u8> = (0..len as u8).collect();
            let body = format!("\"*NULL\"0001L0#1234[{}", encrypt(&key, &format!("]_{}", format_timestamp(now))));
            let f = parse_frame(&frame(&body)).unwrap();
            assert_eq!(f.content(Some(&key)).unwrap().timestamp, Some(now), "AES-{}", len * 8);
            assert!(f.content(Some(&[9u8; 16])).is_err(), "AES-{}: another key does not read", len * 8);
        }
    }

    #[test]
    fn timestamps_round_trip() {
        for secs in [0, 946_684_800, 1_765_000_000, 4_102_444_799] {
            let t = Timestamp::from_secs(secs);
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        assert_eq!(format_timestamp(Timestamp::from_secs(1_356_962_398)), "13:59:58,12-31-2012");
        assert_eq!(parse_timestamp("25:00:00,01-01-2020"), None);
        assert_eq!(parse_timestamp("12:00:00,02-30-2020"), None, "no such date");
        assert_eq!(parse_timestamp("12:00:00,02-29-2024"), Timestamp::parse_rfc3339("2024-02-29T12:00:00Z").ok());
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let good = frame("\"NULL\"0001L0#1234[]");
        assert!(parse_frame(&good).is_ok());
        let mut bad_crc = good.clone();
        bad_crc[1] = if bad_crc[1] == b'0' { b'1' } else { b'0' };
        assert!(parse_frame(&bad_crc).unwrap_err().to_string().contains("CRC"));
        let mut bad_len = good.clone();
        bad_len.insert(10, b'x');
        assert!(parse_frame(&bad_len).unwrap_err().to_string().contains("length"));
        assert!(parse_frame(b"\nhello world\r").is_err());
    }

    #[test]
    fn contact_id_events_map_to_kinds() {
        assert_eq!(contact_id("#1234|1101 01 015").unwrap().meaning, Meaning::Alarm(AlarmKind::Safety, None));
        assert_eq!(contact_id("#1234|1103 00 001").unwrap().meaning, Meaning::Alarm(AlarmKind::Fall, None));
        assert_eq!(contact_id("#1234|3101 01 015").unwrap().meaning, Meaning::Heard("restore or status report"));
        assert_eq!(contact_id("#1234|1602 00 000").unwrap().meaning, Meaning::Heard("periodic test"));
        assert!(contact_id("#1234|1999 00 000").is_err());
        assert!(contact_id("#1234|hello").is_err());
    }
}
