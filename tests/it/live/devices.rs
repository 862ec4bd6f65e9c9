//! Real alarm devices, played by independent implementations: a DC-09 panel built on
//! the `siadc09` package (tests/devices/dc09_peer.py, in a virtualenv .ci/run makes)
//! and a SCAIP device played by SIPp (tests/devices/scaip_alarm.xml). Their alarms
//! reach the nearest staff member; they are acknowledged only once stored; resends are
//! one alarm; every refusal is answered, counted and listed; a silent device raises
//! one heartbeat_missed alarm, across a SIGKILL.
//!
//! Under CI (`CI` set) the peers' absence fails these tests; elsewhere they are skipped
//! with a message saying how to install them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// An AES-128 key, as a DC-09 panel and the register both hold it.
const KEY: &str = "850CBA22F7DD4F033405DA83E4C5BAE9";

/// The Python with `siadc09`, and SIPp.
struct Peers {
    python: PathBuf,
}

fn peers() -> Option<Peers> {
    let python =
        std::env::var_os("VAKT_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python"));
    let has_siadc09 = Command::new(&python).args(["-c", "import siadc09"]).output().is_ok_and(|o| o.status.success());
    let has_sipp = Command::new("sipp").arg("-v").output().is_ok();
    if !(has_siadc09 && has_sipp) {
        let how = "make target/test-venv with `python3 -m venv target/test-venv && target/test-venv/bin/pip install siadc09==1.0.1`, and install Debian's sip-tester (SIPp) (.ci/run does both)";
        assert!(std::env::var_os("CI").is_none(), "the device tests need their peers under CI: {how}");
        eprintln!("SKIPPED a device test: {how}");
        return None;
    }
    Some(Peers { python })
}

impl Peers {
    /// Frames sent by the DC-09 panel to `port`; the answers as `siadc09` reads them.
    fn dc09(&self, port: u16, args: &[&str]) -> Vec<Value> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/devices/dc09_peer.py");
        let out = Command::new(&self.python).arg(script).args(["--port", &port.to_string()]).args(args).output().unwrap();
        assert!(out.status.success(), "dc09_peer.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// SCAIP requests sent by SIPp over `transport` (`u1` UDP, `t1` TCP), one call each:
    /// (ref, cid, dty, stc). The `<mrs>` answers as SIPp logged them: (ref, snu).
    fn scaip(&self, dir: &Path, port: u16, transport: &str, calls: &[(&str, &str, &str, &str)]) -> Vec<(String, u32)> {
        let run = dir.join(format!("sipp-{}", unique(transport)));
        std::fs::create_dir_all(&run).unwrap();
        let mut inf = String::from("SEQUENTIAL\n");
        for (r, cid, dty, stc) in calls {
            inf.push_str(&format!("{r};-;{cid};{dty};{stc}\n"));
        }
        std::fs::write(run.join("calls.csv"), inf).unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/devices/scaip_alarm.xml");
        let out = Command::new("sipp")
            .current_dir(&run)
            .args([&format!("127.0.0.1:{port}"), "-t", transport, "-p", &free_port().to_string(), "-sf"])
            .arg(&scenario)
            .args(["-inf", "calls.csv", "-m", &calls.len().to_string(), "-trace_logs", "-timeout", "60s", "-timeout_error"])
            .output()
            .unwrap();
        let logs: String = std::fs::read_dir(&run)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("_logs.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        assert!(out.status.success(), "SIPp failed ({}):\n{}\n{logs}", out.status, String::from_utf8_lossy(&out.stdout));
        logs.lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(" ref=")?;
                let (r, snu) = rest.split_once(" snu=")?;
                Some((r.to_owned(), snu.trim().parse().unwrap()))
            })
            .collect()
    }
}

/// The receivers' configuration, with `extra` keys for `[devices]`.
fn receivers(dc09: u16, scaip: u16, devices: &str) -> String {
    format!("\n[dc09]\nlisten = \"127.0.0.1:{dc09}\"\n\n[scaip]\nlisten = \"127.0.0.1:{scaip}\"\n\n[devices]\n{devices}\n")
}

/// `vakt import devices` of `csv` into a running vakt's store: its output.
fn import(v: &Vakt, csv: &str) -> std::process::Output {
    let file = v.dir.join("devices.csv");
    std::fs::write(&file, csv).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["import", "devices"])
        .arg(&file)
        .arg("--config")
        .arg(&v.config)
        .envs(v.backend.env.iter().map(|(k, val)| (k.as_str(), val.as_str())))
        .output()
        .unwrap()
}

/// `vakt import devices`; waits until the running engine has them.
async fn import_devices(v: &Vakt, csv: &str, n: usize) {
    let out = import(v, csv);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_metric(v, "vakt_devices_registered", n as f64).await;
}

/// An AES-256 key.
const KEY_256: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

const DEVICES: &str = "device_id,protocol,account,resident_id,key,heartbeat_secs\n\
                       panel-1,dc09,1234,r1,,\n\
                       panel-2,dc09,ABCD,r2,850CBA22F7DD4F033405DA83E4C5BAE9,\n\
                       careium-1,scaip,4712,r3,,\n\
                       careium-2,scaip,4713,r4,,\n\
                       panel-3,dc09,BEEF,r6,000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F,\n";

fn answer(v: &Value) -> (&str, i64, &str) {
    (v["answer"].as_str().unwrap_or("none"), v["seq"].as_i64().unwrap_or(-1), v["account"].as_str().unwrap_or(""))
}

/// A DC-09 personal emergency and a SCAIP fall, each from an independent peer, become
/// incidents offered to the nearest staff member on duty; each is acknowledged (the
/// panel's ACK echoing its sequence, receiver, line and account, encrypted when the
/// frame was; SCAIP's `snu` 0), and a resend is the same alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_from_real_protocol_peers_reach_the_nearest_staff_member() {
    let Some(peers) = peers() else { return };
    let dir = temp_dir("devices-e2e");
    let backend = Backend::embedded(&dir);
    let (dc09, scaip) = (free_port(), free_port());
    let toml = format!("{LADDER_TOML}{FJORD_TOML}{}", receivers(dc09, scaip, ""));
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    // Bad files are refused whole, each bad line named.
    let header = "device_id,protocol,account,resident_id,key,heartbeat_secs\n";
    let out = import(&v, &format!("{header}panel-1,dc09,1234,r1,,\npanel-9,dc09,12,r1,,\npanel-8,dc09,99AA,r1,abcd,\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("2 bad row(s), nothing imported"), "{err}");
    assert!(err.contains("line 3: a DC-09 account is 3 to 16 hex digits") && err.contains("line 4: the key must be"), "{err}");
    let out = import(&v, &format!("{header}ghost-1,scaip,777,nobody,,\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("device ghost-1: no resident nobody in the directory"), "{err}");
    import_devices(&v, DEVICES, 5).await;
    let (mut ops, _device, mut near) = clients_with_near_on_duty(&v, backend.mqtt_port()).await;
    let offers = staff_topic("near", "offers");

    // Contact ID 101, personal emergency: plain, over TCP; a link test; the same frame again.
    let answers = peers.dc09(dc09, &["--account", "1234", "--frame", "ADM-CID:1:1101 01 015", "--frame", "NULL:2:", "--frame", "ADM-CID:1:1101 01 015"]);
    assert_eq!(answers.iter().map(answer).collect::<Vec<_>>(), [("ACK", 1, "1234"), ("ACK", 2, "1234"), ("ACK", 1, "1234")], "{answers:?}");
    let raised = ops.expect("vakt/v1/incidents/fjord", "the panel's alarm", |e| e["type"] == "raised" && e["alarm_id"] == "dc09:panel-1:0001-101015").await;
    assert_eq!((raised["kind"].as_str(), raised["resident_id"].as_str()), (Some("safety"), Some("r1")));
    let incident = raised["incident_id"].as_u64().unwrap();
    near.expect(&offers, "the panel's alarm offered", |m| is(m, "offer", incident)).await;

    // Contact ID 103, a fall: AES-128, over UDP, with a receiver and line number.
    let answers = peers.dc09(dc09, &["--account", "ABCD", "--key", KEY, "--receiver", "12", "--line", "3", "--udp", "--frame", "ADM-CID:7:1103 00 001"]);
    let a = &answers[0];
    assert_eq!(
        (answer(a), a["encrypted"].as_bool(), a["receiver"].as_str(), a["line"].as_str()),
        (("ACK", 7, "ABCD"), Some(true), Some("12"), Some("3")),
        "{a}"
    );
    ops.expect("vakt/v1/incidents/fjord", "the encrypted fall", |e| {
        e["type"] == "raised" && e["alarm_id"] == "dc09:panel-2:0007-103001" && e["kind"] == "fall"
    })
    .await;
    // AES-256, over TCP: a SIA DC-03 medical alarm.
    let answers = peers.dc09(dc09, &["--account", "BEEF", "--key", KEY_256, "--frame", "SIA-DCS:9:NMA001"]);
    assert_eq!((answer(&answers[0]), answers[0]["encrypted"].as_bool()), (("ACK", 9, "BEEF"), Some(true)), "{answers:?}");
    ops.expect("vakt/v1/incidents/fjord", "the AES-256 alarm", |e| {
        e["type"] == "raised" && e["alarm_id"] == "dc09:panel-3:0009-MA001" && e["kind"] == "safety"
    })
    .await;

    // SIA DC-03 fire alarm for the same resident as the first: it joins their incident.
    let answers = peers.dc09(dc09, &["--account", "1234", "--frame", "SIA-DCS:3:Nri01/FA129"]);
    assert_eq!(answer(&answers[0]), ("ACK", 3, "1234"));
    ops.expect("vakt/v1/incidents/fjord", "the fire alarm joins r1's incident", |e| {
        e["type"] == "attached" && e["alarm_id"] == "dc09:panel-1:0003-FA129" && e["priority_raised_to"] == "critical"
    })
    .await;

    // SCAIP: a fall detector over SIP/UDP, sent again over SIP/TCP (one alarm).
    assert_eq!(peers.scaip(&dir, scaip, "u1", &[("S1", "4712", "0005", "0009")]), [("S1".to_owned(), 0)]);
    let raised = ops.expect("vakt/v1/incidents/fjord", "the SCAIP fall", |e| e["type"] == "raised" && e["alarm_id"] == "scaip:careium-1:S1").await;
    assert_eq!((raised["kind"].as_str(), raised["resident_id"].as_str()), (Some("fall"), Some("r3")));
    assert_eq!(raised["position"], json!({ "lat": 61.2301, "lon": 7.1002 }), "the device's position");
    let scaip_incident = raised["incident_id"].as_u64().unwrap();
    assert_eq!(peers.scaip(&dir, scaip, "t1", &[("S1", "4712", "0005", "0009"), ("S2", "4712", "0003", "0019")]), [("S1".to_owned(), 0), ("S2".to_owned(), 0)]);
    ops.expect("vakt/v1/incidents/fjord", "the resident's cancel closes it", |e| e["type"] == "closed" && e["incident_id"] == scaip_incident).await;

    let store = v.store().await;
    assert_eq!(raised_count(&store).await, 4, "a resend is one alarm");
    assert_eq!(v.metric("vakt_device_messages_total{outcome=\"stored\",protocol=\"dc09\"}"), 6.0);
    assert_eq!(v.metric("vakt_device_messages_total{outcome=\"stored\",protocol=\"scaip\"}"), 3.0);
    let devices = api_as_admin(&v, &store, "/api/devices").await;
    let panel = devices["devices"].as_array().unwrap().iter().find(|d| d["device_id"] == "panel-1").unwrap().clone();
    assert!(panel["last_heard"].is_string() && panel["municipality"] == "fjord", "{panel}");
    store.close().await;
}

/// Every refusal gets the protocol's negative answer where it has one, is counted, and
/// is listed for the dashboards; none holds up another device's alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_senders_are_answered_counted_and_listed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(peers) = peers() else { return };
    let dir = temp_dir("devices-refused");
    let backend = Backend::embedded(&dir);
    let (dc09, scaip) = (free_port(), free_port());
    let toml = format!("{LADDER_TOML}{FJORD_TOML}{}", receivers(dc09, scaip, "max_connections_per_address = 4\nmax_messages_per_second = 5\n"));
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    import_devices(&v, DEVICES, 5).await;
    let mut ops = Client::connect(backend.mqtt_port(), OPS).await;

    // Four connections that send nothing hold every place 127.0.0.1 has; a fifth is
    // refused. The alarm from another address is answered all the same.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", dc09)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = tokio::net::TcpStream::connect(("127.0.0.1", dc09)).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the fifth connection is closed: {closed:?}");
    let answers = peers.dc09(dc09, &["--source", "127.0.0.2", "--account", "1234", "--frame", "ADM-CID:1:1101 01 015"]);
    assert_eq!(answer(&answers[0]), ("ACK", 1, "1234"), "another address is not held up");
    // An endless frame from one of them: refused, and its connection closed.
    let mut endless = idle.pop().unwrap();
    endless.write_all(b"\n").await.unwrap();
    let _ = endless.write_all(&vec![b'7'; 5000]).await;
    assert!(matches!(tokio::time::timeout(Duration::from_secs(5), endless.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_))), "closed");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let dc = |args: &[&str]| peers.dc09(dc09, args);
    // Unknown account: DUH. A wrong key: DUH. An unmapped event: DUH. A stale clock: NAK with vakt's time.
    assert_eq!(answer(&dc(&["--account", "9999", "--frame", "NULL:1:"])[0]), ("DUH", 1, "9999"));
    assert_eq!(answer(&dc(&["--account", "ABCD", "--key", "000102030405060708090A0B0C0D0E0F", "--frame", "NULL:2:"])[0]).0, "DUH");
    assert_eq!(answer(&dc(&["--account", "1234", "--frame", "ADM-CID:3:1999 00 000"])[0]), ("DUH", 3, "1234"));
    let nak = &dc(&["--account", "1234", "--time-offset", "-600", "--frame", "NULL:4:"])[0];
    assert_eq!(answer(nak).0, "NAK");
    let vakt_time = epoch_secs(nak["timestamp"].as_str().unwrap());
    let now = vakt::live::clock::wall_clock().as_millis() / 1000;
    assert!((vakt_time - now).abs() <= 5, "the NAK carries vakt's time: {nak}");
    // A bad CRC: no answer (its header cannot be trusted); the panel sends again.
    let good = vakt::live::devices::dc09::frame("\"NULL\"0005L0#1234[]");
    let mut bad = good.clone();
    bad[1] = if bad[1] == b'0' { b'1' } else { b'0' };
    let hex: String = bad.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(answer(&dc(&["--wait", "2", "--raw", &hex])[0]).0, "none");
    // SCAIP: an unknown controller and an unmapped device type get snu 3.
    assert_eq!(peers.scaip(&dir, scaip, "u1", &[("X1", "9999", "0005", "0009"), ("X2", "4712", "0099", "0000")]), [("X1".to_owned(), 3), ("X2".to_owned(), 3)]);
    // A body over 8 KiB: SIP's 200 OK, then snu 1 (too long).
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let body = format!("<mrq><ref>BIG</ref><cid>4712</cid><dty>0005</dty><dte>{}</dte></mrq>", "x".repeat(9000));
    let local = udp.local_addr().unwrap();
    let big = format!(
        "MESSAGE sip:vakt@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbig\r\nFrom: <sip:4712@{local}>;tag=1\r\nTo: <sip:vakt@127.0.0.1>\r\n\
         Call-ID: big\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    udp.send_to(big.as_bytes(), ("127.0.0.1", scaip)).await.unwrap();
    let mut got = String::new();
    for _ in 0..2 {
        let mut dgram = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut dgram)).await.expect("an answer").unwrap();
        got.push_str(&String::from_utf8_lossy(&dgram[..n]));
    }
    assert!(got.starts_with("SIP/2.0 200 OK") && got.contains("<ref>BIG</ref><snu>1</snu>"), "{got}");
    // A sender over its rate (5 a second here, bursts of 50): the rest dropped unanswered.
    let flood = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    for seq in 0..120 {
        flood.send_to(&vakt::live::devices::dc09::frame(&format!("\"NULL\"{seq:04}L0#1234[]")), ("127.0.0.1", dc09)).await.unwrap();
    }
    let mut acks = 0;
    let mut dgram = [0u8; 512];
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), flood.recv(&mut dgram)).await {
        acks += 1;
    }
    assert!((50..=60).contains(&acks), "a burst of 50 answered, the rest dropped: {acks}");

    for reason in ["flooding", "bad_frame", "unknown_device", "wrong_key", "unsupported", "stale_timestamp", "payload_too_large"] {
        ops.expect("vakt/v1/rejects", reason, |r| r["reason"] == reason && r["topic"].as_str().is_some_and(|t| t.starts_with("devices/"))).await;
    }
    let store = v.store().await;
    let listed = api_as_admin(&v, &store, "/api/refused").await;
    let reasons: Vec<&str> = listed["refused"].as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
    for reason in ["flooding", "bad_frame", "unknown_device", "wrong_key", "unsupported", "stale_timestamp", "payload_too_large"] {
        assert!(reasons.contains(&reason), "{reason} on the dashboards' list: {reasons:?}");
    }
    assert!(v.metric("vakt_device_messages_total{outcome=\"bad_frame\",protocol=\"dc09\"}") >= 2.0, "the CRC and the endless frame");
    assert_eq!(v.metric("vakt_device_messages_total{outcome=\"unknown_device\",protocol=\"scaip\"}"), 1.0);
    assert_eq!(v.metric("vakt_device_messages_total{outcome=\"payload_too_large\",protocol=\"scaip\"}"), 1.0);
    assert!(v.metric("vakt_device_messages_total{outcome=\"flooding\",protocol=\"dc09\"}") >= 60.0, "each dropped message counted");
    assert_eq!(raised_count(&store).await, 1, "only the good alarm");
    store.close().await;
}

/// An RFC 3339 time (the answer's timestamp as `siadc09` printed it), in seconds since 1970.
fn epoch_secs(iso: &str) -> i64 {
    vakt::core::Timestamp::parse_rfc3339(iso).unwrap().as_millis() / 1000
}

/// The store down: the panel gets no ACK and the SCAIP device `snu` 5 (not treated);
/// each sends again once it is back, and the resend is the one alarm, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_acknowledged_only_once_its_alarm_is_stored() {
    use sqlx::Executor;
    let Some(peers) = peers() else { return };
    let dir = temp_dir("devices-store-down");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let backend = Backend::external(port).await;
    let support::Db::Postgres(db) = &backend.db else { unreachable!() };
    let (dc09, scaip) = (free_port(), free_port());
    let toml = format!("{LADDER_TOML}{FJORD_TOML}{}", receivers(dc09, scaip, "answer_timeout_secs = 2\n"));
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    import_devices(&v, DEVICES, 5).await;
    let mut ops = Client::connect(port, OPS).await;

    let mut admin = support::postgres_admin().await;
    admin.execute(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false").as_str()).await.unwrap();
    admin.execute(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'").as_str()).await.unwrap();
    let frame = ["--account", "1234", "--wait", "4", "--frame", "ADM-CID:21:1101 01 015"];
    assert_eq!(answer(&peers.dc09(dc09, &frame)[0]).0, "none", "no ACK while the store is down");
    assert_eq!(peers.scaip(&dir, scaip, "u1", &[("D1", "4712", "0005", "0009")]), [("D1".to_owned(), 5)], "not treated");
    assert_eq!(v.metric("vakt_device_messages_total{outcome=\"unanswered\",protocol=\"dc09\"}"), 1.0);

    admin.execute(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true").as_str()).await.unwrap();
    ops.expect("vakt/v1/incidents/fjord", "raised once the store is back", |e| e["type"] == "raised" && e["alarm_id"] == "dc09:panel-1:0021-101015").await;
    assert_eq!(answer(&peers.dc09(dc09, &frame)[0]), ("ACK", 21, "1234"), "the resend is acknowledged");
    assert_eq!(peers.scaip(&dir, scaip, "t1", &[("D1", "4712", "0005", "0009")]), [("D1".to_owned(), 0)]);
    ops.expect("vakt/v1/incidents/fjord", "the SCAIP fall", |e| e["type"] == "raised" && e["alarm_id"] == "scaip:careium-1:D1").await;
    let store = v.store().await;
    let ids = raised_alarm_ids(&store, 2).await;
    assert_eq!(ids, ["dc09:panel-1:0021-101015", "scaip:careium-1:D1"], "each alarm once");
    store.close().await;
}

/// A supervised device that falls silent raises one heartbeat_missed alarm for its
/// resident; vakt killed with SIGKILL and started again does not raise it twice; the
/// device heard again is noted on the incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_raises_one_heartbeat_missed_across_a_kill() {
    let Some(peers) = peers() else { return };
    let dir = temp_dir("devices-silent");
    let backend = Backend::embedded(&dir);
    let (dc09, scaip) = (free_port(), free_port());
    let toml = format!("{LADDER_TOML}{FJORD_TOML}{}", receivers(dc09, scaip, "supervision_grace_secs = 1\n"));
    let mut v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    import_devices(&v, "device_id,protocol,account,resident_id,key,heartbeat_secs\nsmoke-1,dc09,5555,r5,,10\n", 1).await;
    assert_eq!(answer(&peers.dc09(dc09, &["--account", "5555", "--frame", "NULL:1:"])[0]).0, "ACK");
    let mut ops = Client::connect(backend.mqtt_port(), OPS).await;
    let silent = ops
        .expect("vakt/v1/incidents/fjord", "the silence's alarm", |e| {
            e["type"] == "raised"
                && e["kind"] == "heartbeat_missed"
                && e["resident_id"] == "r5"
                && e["alarm_id"].as_str().is_some_and(|a| a.starts_with("silent:smoke-1:"))
        })
        .await;
    assert_eq!(v.metric("vakt_devices_silent"), 1.0);
    // An alarm whose ACK the panel never saw (vakt killed): its repeat after the restart
    // is the same alarm.
    import_devices(&v, "device_id,protocol,account,resident_id,key,heartbeat_secs\nsmoke-1,dc09,5555,r5,,10\npanel-1,dc09,1234,r1,,\n", 2).await;
    let frame = ["--account", "1234", "--frame", "ADM-CID:77:1101 01 015"];
    assert_eq!(answer(&peers.dc09(dc09, &frame)[0]).0, "ACK");
    v.kill9();
    v.restart();
    assert_eq!(answer(&peers.dc09(dc09, &frame)[0]), ("ACK", 77, "1234"), "the repeat after the restart");
    // Longer than an interval and its grace after the restart: nothing new.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let store = v.store().await;
    assert_eq!(raised_count(&store).await, 2, "one alarm for the silence, one for the panel\n{}", v.log());
    assert_eq!(v.metric("vakt_devices_silent"), 1.0, "still silent after the restart");
    // Heard again: noted on the open incident, and no longer silent.
    assert_eq!(answer(&peers.dc09(dc09, &["--account", "5555", "--frame", "NULL:2:"])[0]).0, "ACK");
    let incident = silent["incident_id"].as_u64().unwrap();
    eventually(Duration::from_secs(10), || async {
        let events = store.incident_events(incident as i64).await.unwrap();
        events.iter().any(|e| e.body.contains("smoke-1 is heard again")).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the return noted on incident {incident}\n{}", v.log()));
    wait_metric(&v, "vakt_devices_silent", 0.0).await;
    store.close().await;
}

/// SCAIP over SIP/TLS (the server's certificate from the configuration, relative to its
/// file), with Python's own TLS as the device: checked against a private CA, the fall
/// alarm stored and its `<mrs>` back on the TLS connection; a client that never
/// completes its handshake holds nothing up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaip_over_tls_with_a_configured_certificate() {
    let Some(peers) = peers() else { return };
    let dir = temp_dir("devices-tls");
    super::security::private_ca_and_server(&dir);
    let backend = Backend::embedded(&dir);
    let (dc09, scaip, tls) = (free_port(), free_port(), free_port());
    let toml = format!(
        "{LADDER_TOML}{FJORD_TOML}\n[dc09]\nlisten = \"127.0.0.1:{dc09}\"\n\n[scaip]\nlisten = \"127.0.0.1:{scaip}\"\ntls_listen = \"127.0.0.1:{tls}\"\ncertificate = \"server.pem\"\nprivate_key = \"server.key\"\n"
    );
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    import_devices(&v, DEVICES, 5).await;
    let mut ops = Client::connect(backend.mqtt_port(), OPS).await;
    // A client that connects and says nothing: its handshake times out on its own.
    let _mute = tokio::net::TcpStream::connect(("127.0.0.1", tls)).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/devices/scaip_tls.py");
    let ca = dir.join("ca.pem");
    let out = Command::new(&peers.python)
        .arg(script)
        .args(["--port", &tls.to_string(), "--ca"])
        .arg(&ca)
        .args(["--ref", "T1", "--cid", "4713", "--dty", "0005", "--stc", "0009"])
        .output()
        .unwrap();
    assert!(out.status.success(), "scaip_tls.py: {}\n{}", String::from_utf8_lossy(&out.stderr), v.log());
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["response"], "SIP/2.0 200 OK", "{got}");
    assert!(got["message"].as_str().unwrap().starts_with("MESSAGE sips:4713@"), "{got}");
    assert!(got["via"].as_str().unwrap().starts_with("SIP/2.0/TLS "), "{got}");
    assert_eq!((got["ref"].as_str(), got["snu"].as_u64()), (Some("T1"), Some(0)), "{got}");
    assert!(got["tls"].as_str().unwrap().starts_with("TLSv1."), "{got}");
    ops.expect("vakt/v1/incidents/fjord", "the fall over TLS", |e| e["type"] == "raised" && e["alarm_id"] == "scaip:careium-2:T1" && e["resident_id"] == "r4")
        .await;
}
