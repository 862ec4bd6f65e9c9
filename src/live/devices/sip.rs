//! The little of SIP (RFC 3261) that SCAIP needs: a `MESSAGE` request (RFC 3428) read
//! and answered, and vakt's own `MESSAGE` carrying the `<mrs>` back to the device.
//! Not a SIP stack: no dialogs, no registrar, no proxying; nothing else is accepted.

/// The largest SIP message vakt reads (headers and body).
pub const MAX_MESSAGE: usize = 16 * 1024;

/// A SIP message as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `MESSAGE sip:… SIP/2.0`, or `SIP/2.0 200 OK`.
    pub start: String,
    /// In order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How far a stream's bytes hold a whole message.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A message, and how many bytes it took.
    Whole(Message, usize),
    /// Not yet: more bytes are needed.
    Partial,
    /// Never a message (too large, or garbled): why.
    Bad(String),
}

/// Compact forms (RFC 3261 §7.3.3) and their full names.
fn full_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "m" | "M" => "Contact",
        n => n,
    }
}

impl Message {
    pub fn is_request(&self) -> bool {
        !self.start.starts_with("SIP/")
    }

    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    /// The first header of that name (case does not matter; compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| full_name(n).eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers.iter().filter(move |(n, _)| full_name(n).eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The response to this request: Via, From, To (with a tag of vakt's), Call-ID and
    /// CSeq as RFC 3261 §8.2.6 says.
    pub fn response(&self, code: u16, reason: &str, tag: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for via in self.all("Via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            if let Some(v) = self.header(name) {
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        if let Some(to) = self.header("To") {
            let tagged = if to.contains(";tag=") { to.to_owned() } else { format!("{to};tag={tag}") };
            out.push_str(&format!("To: {tagged}\r\n"));
        }
        out.push_str("Server: vakt\r\nContent-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

/// Reads one message from the start of `buf` (a stream's bytes, or a datagram).
pub fn read(buf: &[u8]) -> Read {
    // Keep-alive blank lines between messages (RFC 5626) are skipped by the caller.
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE { Read::Bad(format!("no end of headers in {} bytes", buf.len())) } else { Read::Partial };
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else { return Read::Bad("the headers are not UTF-8".into()) };
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or("").to_owned();
    let is_response = start.starts_with("SIP/2.0 ");
    let parts: Vec<&str> = start.split(' ').collect();
    if !is_response && (parts.len() != 3 || parts[2] != "SIP/2.0") {
        return Read::Bad(format!("not a SIP/2.0 start line: {start:?}"));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            // A folded header continues the one before (RFC 3261 §7.3.1).
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Read::Bad("a continuation line before any header".into()),
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else { return Read::Bad(format!("not a header: {line:?}")) };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if headers.len() > 64 {
        return Read::Bad("more than 64 headers".into());
    }
    let message = Message { start, headers, body: Vec::new() };
    let length = match message.header("Content-Length").map(|l| l.parse::<usize>()) {
        Some(Ok(n)) => n,
        Some(Err(_)) => return Read::Bad("Content-Length is not a number".into()),
        // A datagram's body is the rest (RFC 3261 §18.3); a stream must say.
        None => buf.len() - end - 4,
    };
    let total = end + 4 + length;
    if total > MAX_MESSAGE {
        return Read::Bad(format!("{total} bytes; vakt reads at most {MAX_MESSAGE}"));
    }
    if buf.len() < total {
        return Read::Partial;
    }
    Read::Whole(Message { body: buf[end + 4..total].to_vec(), ..message }, total)
}

/// The URI inside a From, To or Contact value (`"Name" <sip:x@y>;tag=1`, or `sip:x@y;tag=1`).
pub fn uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// vakt's `MESSAGE` to the device that sent `request`, carrying `body` (an `<mrs>`):
/// to the device's Contact (or From) URI, from the request's To (with `tag`, the tag
/// of vakt's response), as a new transaction of the same Call-ID, so that the device
/// can tie the answer to its request by the SIP headers as well as by the `ref`.
pub fn message_to_sender(request: &Message, transport: &str, local: std::net::SocketAddr, body: &str, branch: &str, tag: &str) -> Vec<u8> {
    let target = request.header("Contact").or(request.header("From")).map(uri).unwrap_or("sip:device");
    let from = request.header("To").map(uri).unwrap_or("sip:vakt");
    let to = request.header("From").unwrap_or("<sip:device>");
    let call_id = request.header("Call-ID").map_or_else(|| format!("{branch}@vakt"), str::to_owned);
    format!(
        "MESSAGE {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: <{from}>;tag={tag}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] =
        b"MESSAGE sip:vakt@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nf: <sip:4712@127.0.0.1:5070>;tag=9\r\n\
        To: <sip:vakt@127.0.0.1:5060>\r\nCall-ID: abc\r\nCSeq: 7 MESSAGE\r\nContent-Type: application/scaip+xml\r\nl: 5\r\n\r\n<mrq>";

    #[test]
    fn a_request_is_read_and_answered() {
        let Read::Whole(m, n) = read(REQUEST) else { panic!("whole") };
        assert_eq!((m.method(), n, m.body.as_slice()), ("MESSAGE", REQUEST.len(), &b"<mrq>"[..]));
        assert_eq!(uri(m.header("From").unwrap()), "sip:4712@127.0.0.1:5070");
        let answer = String::from_utf8(m.response(200, "OK", "v1")).unwrap();
        assert!(answer.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"), "{answer}");
        assert!(answer.contains("To: <sip:vakt@127.0.0.1:5060>;tag=v1\r\n") && answer.contains("CSeq: 7 MESSAGE\r\n"), "{answer}");
        assert_eq!(read(&REQUEST[..REQUEST.len() - 2]), Read::Partial);
        assert!(matches!(read(b"HELLO\r\n\r\n"), Read::Bad(_)));
        assert!(matches!(read(&vec![b'a'; MAX_MESSAGE + 1]), Read::Bad(_)));
    }
}
