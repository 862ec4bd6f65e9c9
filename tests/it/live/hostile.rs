//! What a faulty device or an attacker sends: nothing may stop vakt taking the next
//! alarm (docs/mqtt.md, "Messages too large"; docs/operations.md, "What a sender cannot
//! do").

use std::time::Duration;

use serde_json::{Value, json};

use super::support::*;
use super::{OPS, api_as_admin, on_duty, raised_at_least, staff_topic, wait_metric};

/// A payload of `n` bytes: a JSON string, so only its size is wrong.
fn big(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    v.push(b'"');
    v.resize(n - 1, b'x');
    v.push(b'"');
    v
}

const MB: usize = 1_000_000;

/// Waits for the reject of a message too large on `topic`, and checks it names the
/// size. Returns it.
async fn refused_for_size(ops: &mut Client, topic: &str, size: usize) -> Value {
    let r = ops
        .expect("vakt/v1/rejects", &format!("{topic} ({size} bytes) refused"), |m| {
            m["reason"] == "payload_too_large" && m["topic"] == topic && m["detail"].as_str().is_some_and(|d| d.starts_with(&format!("{size} bytes")))
        })
        .await;
    assert!(r["detail"].as_str().unwrap().contains("the limit is 16384"), "{r}");
    r
}

/// Messages of 1.1 and 10 MB on a staff member's status topic and on an alarm topic,
/// through a Mosquitto that takes them (no packet limit: its default): vakt takes each
/// off the broker and refuses it with its size, the valid alarms behind them are
/// offered, and vakt's connection never drops. So it goes too for one that arrives
/// while vakt is down (the broker keeps it in vakt's session) and for a retained one,
/// which the broker gives again at each subscription: refused again, and no more.
/// Before, one message over 1 MiB made vakt's client drop the connection, the broker
/// delivered it again at the next, and nothing behind it was ever taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_any_size_stops_nothing_behind_it() {
    let dir = temp_dir("too-large");
    let port = free_port();
    let _broker = Mosquitto::start(&dir, port);
    let backend = Backend::sqlite_on(port, &dir);
    let mut v = Vakt::start(&backend, &dir);
    let mut ops = Client::connect(port, OPS).await;
    let mut near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    wait_metric(&v, "vakt_staff_on_duty", 1.0).await;
    let hostile = Client::connect(port, &[]).await;
    let device = Client::connect(port, &[]).await;
    let (status, alarms) = (staff_topic("near", "status"), "vakt/v1/alarms/fjord");
    let sent = [(status.as_str(), 1_100_000), (alarms, 10 * MB), (alarms, 1_100_000), (status.as_str(), 10 * MB)];
    for (i, (topic, size)) in sent.iter().enumerate() {
        hostile.publish(topic, big(*size)).await;
        device.publish_json(alarms, alarm(&format!("after-{i}"), "r1", "fall")).await;
    }
    for (topic, size) in sent {
        refused_for_size(&mut ops, topic, size).await;
    }
    // The first alarm opened the incident and was offered; the repeats joined it.
    near.expect(&staff_topic("near", "offers"), "the offer behind the big messages", |m| is(m, "offer", 1)).await;
    let raised = ops.expect("vakt/v1/incidents/fjord", "raised", |e| e["type"] == "raised").await;
    assert_eq!(raised["alarm_id"], "after-0");
    device.publish_json(alarms, alarm("another", "r2", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "another alarm raised", |e| e["type"] == "raised" && e["alarm_id"] == "another").await;

    // A retained one, on a gateway's status topic.
    let gateway = "vakt/v1/gateways/fjord/gw-big";
    hostile.publish_retained(gateway, big(1_100_000)).await;
    refused_for_size(&mut ops, gateway, 1_100_000).await;

    // On the dashboard too: the alarms' under their municipality, the staff member's
    // under theirs, the gateway's under its own.
    let store = v.store().await;
    let listed = api_as_admin(&v, &store, "/api/refused").await;
    let listed: Vec<(String, String)> =
        listed["refused"].as_array().unwrap().iter().map(|r| (r["topic"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned())).collect();
    for topic in [status.as_str(), alarms, gateway] {
        assert!(listed.iter().any(|(t, r)| t == topic && r == "payload_too_large"), "{topic} listed: {listed:?}");
    }
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"payload_too_large\"}"), 5.0);

    // While vakt is down, the broker keeps a big one and an alarm behind it in vakt's session.
    assert!(v.stop().success());
    hostile.publish(alarms, big(10 * MB)).await;
    device.publish_json(alarms, alarm("while-down", "r3", "fall")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    v.restart();
    refused_for_size(&mut ops, alarms, 10 * MB).await;
    ops.expect("vakt/v1/incidents/fjord", "the alarm sent while vakt was down", |e| e["type"] == "raised" && e["alarm_id"] == "while-down").await;
    // The retained one again, as at every subscription: refused again, once.
    refused_for_size(&mut ops, gateway, 1_100_000).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        ops.try_take(|t, m| t == "vakt/v1/rejects" && m["topic"] == gateway).is_none(),
        "the retained message was refused once at the start, not in a loop"
    );

    // Not one reconnection, in either process.
    assert_eq!(v.metric("vakt_mqtt_connection_errors_total"), 0.0, "{}", v.log());
    let log = v.log();
    assert_eq!(log.matches("MQTT connected").count(), 2, "one connection per process:\n{log}");
    assert!(!log.contains("MQTT connection lost"), "{log}");
    store.close().await;
}

/// Publishes one message at QoS 1 from a client of its own: `Ok` once the broker
/// acknowledged it, `Err` if the broker closed the connection instead.
async fn publish_once(port: u16, topic: &str, payload: Vec<u8>) -> Result<(), String> {
    let mut opts = rumqttc::MqttOptions::new(unique("sender"), "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 16 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    answered.await.expect("an answer from the broker within 10 s")
}

/// A broker that refuses big packets itself: the sender of a 1.1 or 10 MB message is
/// disconnected and the message goes nowhere, so vakt never sees it; one over vakt's
/// limit but under the broker's reaches vakt and is refused with its reason. The valid
/// alarms behind them are offered.
async fn the_broker_refuses_big_messages_first(v: &Vakt, port: u16, between: usize) {
    let mut ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    let status = staff_topic("near", "status");
    for (topic, size) in [(status.as_str(), 1_100_000), ("vakt/v1/alarms/fjord", 10 * MB), ("vakt/v1/alarms/fjord", 1_100_000), (status.as_str(), 10 * MB)] {
        let sent = publish_once(port, topic, big(size)).await;
        assert!(sent.is_err(), "the broker took {size} bytes on {topic}");
    }
    assert!(publish_once(port, "vakt/v1/alarms/fjord", big(between)).await.is_ok(), "under the broker's limit");
    device.publish_json("vakt/v1/alarms/fjord", alarm("after-big", "r1", "fall")).await;
    refused_for_size(&mut ops, "vakt/v1/alarms/fjord", between).await;
    ops.expect("vakt/v1/incidents/fjord", "the alarm after the big ones", |e| e["type"] == "raised" && e["alarm_id"] == "after-big").await;
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"payload_too_large\"}"), 1.0, "only the one the broker let through");
    assert_eq!(v.metric("vakt_mqtt_connection_errors_total"), 0.0, "{}", v.log());
}

/// The shipped Mosquitto settings (`config/mosquitto/vakt.conf`, `max_packet_size`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mosquitto_refuses_big_messages_before_vakt_sees_them() {
    let dir = temp_dir("shipped-limit");
    let port = free_port();
    let _broker = Mosquitto::shipped(&dir, port);
    let v = Vakt::start(&Backend::sqlite_on(port, &dir), &dir);
    the_broker_refuses_big_messages_first(&v, port, 40_000).await;
}

/// The embedded broker (its `max_payload_size`, four times vakt's limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_refuses_big_messages_before_vakt_sees_them() {
    let dir = temp_dir("embedded-limit");
    let backend = Backend::embedded(&dir);
    let v = Vakt::start(&backend, &dir);
    the_broker_refuses_big_messages_first(&v, backend.mqtt_port(), 40_000).await;
}

/// A crash of Mosquitto (SIGKILL) loses none of the alarms it held for vakt more than
/// a second before: with the shipped `autosave_interval 1` it has written them, and
/// vakt's session, to disk. With Mosquitto's default (every 1,800 s, and at a clean
/// stop) a crash lost every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_crash_loses_no_alarm_it_held_for_more_than_a_second() {
    let dir = temp_dir("broker-crash");
    let port = free_port();
    let mut broker = Mosquitto::shipped(&dir, port);
    let mut v = Vakt::start(&Backend::sqlite_on(port, &dir), &dir);
    // vakt stops; its session (subscriptions, queue) stays at the broker.
    assert!(v.stop().success());
    let device = Client::connect_with(port, &[], &unique("gateway"), false).await;
    let n = 50;
    for i in 0..n {
        device.publish_json("vakt/v1/alarms/fjord", alarm(&format!("held-{i}"), &format!("r{}", i + 1), "safety")).await;
    }
    // Every one acknowledged by the broker, and then more than its save interval.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    broker.kill9();
    broker.start_again();
    v.restart();
    let store = v.store().await;
    assert_eq!(raised_at_least(&store, n, Duration::from_secs(10)).await, n, "every alarm the broker held through its crash\n{}", v.log());
    store.close().await;
}

/// vakt is connected again within a second of the broker coming back after an outage
/// of four seconds (before, its backoff had grown to 3.2 s by then, and vakt came back
/// 2.3 s after the broker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vakt_is_connected_again_within_a_second_of_the_broker() {
    let dir = temp_dir("reconnect");
    let port = free_port();
    let mut broker = Mosquitto::start(&dir, port);
    let v = Vakt::start(&Backend::sqlite_on(port, &dir), &dir);
    for outage in [Duration::from_secs(4), Duration::from_millis(1500)] {
        broker.stop();
        wait_metric(&v, "vakt_mqtt_connected", 0.0).await;
        tokio::time::sleep(outage).await;
        broker.start_again(); // returns once it takes connections
        let back = std::time::Instant::now();
        while v.metric("vakt_mqtt_connected") != 1.0 {
            assert!(back.elapsed() < Duration::from_secs(5), "not connected 5 s after the broker came back\n{}", v.log());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = back.elapsed();
        assert!(took < Duration::from_secs(1), "connected again {took:?} after the broker came back, after an outage of {outage:?}");
    }
    assert!(v.log().contains("MQTT connection back"), "{}", v.log());
}

/// Connections that send half a request and then nothing: each is closed once its
/// headers have taken `http.header_timeout_secs`, and no more than
/// `http.max_connections` are open at once, the next waiting to be accepted until one
/// closes. Before, such a connection stayed open for as long as its client liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_clients_are_closed_and_bounded() {
    use std::io::{Read, Write};
    let dir = temp_dir("slow-http");
    let mut backend = Backend::embedded(&dir);
    backend.http_extra = "header_timeout_secs = 2\nmax_connections = 8\n".into();
    let v = Vakt::start(&backend, &dir);
    let started = std::time::Instant::now();
    let slow: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(v.http).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: vakt\r\n").unwrap();
            s
        })
        .collect();
    // A ninth client: not served while the eight hold every place.
    let mut ninth = std::net::TcpStream::connect(v.http).unwrap();
    ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: vakt\r\nConnection: close\r\n\r\n").unwrap();
    ninth.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    let mut answer = String::new();
    assert!(ninth.read_to_string(&mut answer).is_err() && answer.is_empty(), "served while 8 connections were open: {answer}");
    // The eight are closed for their slow headers...
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "a request with no end was answered");
    }
    let closed_after = started.elapsed();
    assert!(closed_after >= Duration::from_secs(2) && closed_after < Duration::from_secs(8), "closed after {closed_after:?}");
    // ...and the ninth is served then.
    ninth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ninth.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(http_get(v.http, "/readyz").unwrap().0, 200);
}

/// Made-up names on every topic vakt reads grow no metric: a label carries only
/// configured values (an unknown municipality counts as `unknown`), never what a topic
/// says before it is checked. Before, 2,000 made-up municipalities made 2,000 series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_topics_make_no_metric_series() {
    let (_dir, _backend, v, _ops, device) = super::embedded_with_clients("label-flood").await;
    let metrics = || http_get(v.http, "/metrics").unwrap().1;
    let round = |n: usize| {
        let device = &device;
        async move {
            for i in 0..n {
                let name = format!("madeup{n}x{i}");
                device.publish_json(&format!("vakt/v1/alarms/{name}"), alarm(&format!("a-{name}"), "r1", "fall")).await;
                device.publish_json(&format!("vakt/v1/staff/{name}/status"), json!({ "state": "on_duty" })).await;
                device.publish_json(&format!("vakt/v1/staff/{name}/replies"), json!({ "incident_id": 1, "action": "accept" })).await;
                device.publish_json(&format!("vakt/v1/gateways/{name}/gw-{name}"), json!({ "state": "offline" })).await;
            }
        }
    };
    // One of each kind first: the fixed series they use exist from then on.
    let v = &v;
    let taken = |n: f64| async move {
        wait_metric(v, "vakt_alarms_received_total{municipality=\"unknown\"}", n).await;
        wait_metric(v, "vakt_messages_rejected_total{reason=\"unknown_staff\"}", 2.0 * n).await;
        wait_metric(v, "vakt_messages_rejected_total{reason=\"unknown_municipality\"}", 2.0 * n).await;
    };
    round(1).await;
    taken(1.0).await;
    let before = metrics();
    round(300).await;
    taken(301.0).await;
    let after = metrics();
    assert!(!after.contains("madeup"), "a made-up name became a label");
    let grew = after.len() as i64 - before.len() as i64;
    assert!(grew < 200, "/metrics grew by {grew} bytes for 1,200 made-up topics");
}

/// A database password given in any form of the URL (its user part, or a query
/// parameter) is never printed: not in the log of a vakt that cannot reach the
/// database (eight WARN lines before), nor in `vakt user list`'s error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_password_is_never_logged() {
    let dir = temp_dir("redact");
    let closed = free_port();
    let secret = "Sekrit-4711";
    let config = dir.join("vakt.toml");
    let write_config = |url: &str| {
        std::fs::write(
            &config,
            format!(
                "{LADDER_TOML}{FJORD_TOML}\n[mqtt]\nlisten = \"127.0.0.1:{}\"\n[database]\nurl = \"{url}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n",
                free_port(),
                free_port()
            ),
        )
        .unwrap();
    };
    let user_list = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vakt")).args(["user", "list", "--config"]).arg(&config).output().unwrap();
        assert!(!out.status.success());
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    // A parameter the driver does not know is refused by name: the driver itself would
    // have logged it with its value.
    write_config(&format!("postgres://postgres@127.0.0.1:{closed}/vakt?sslpassword={secret}"));
    let printed = user_list();
    assert!(printed.contains("\"sslpassword\"") && !printed.contains(secret), "{printed}");
    // The password in the user part and as a parameter.
    write_config(&format!("postgres://postgres:{secret}@127.0.0.1:{closed}/vakt?password={secret}&sslmode=disable"));
    let printed = user_list();
    assert!(printed.contains("cannot open the database"), "{printed}");
    assert!(!printed.contains(secret), "the password printed: {printed}");
    assert!(printed.contains("postgres:***@") && printed.contains("password=***"), "{printed}");
    // vakt run tries eight times, saying why each time.
    let log_path = dir.join("vakt.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log_path).unwrap().matches("database not available yet").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "{}", std::fs::read_to_string(&log_path).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = run.kill();
    let _ = run.wait();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(!logged.contains(secret), "the password logged: {logged}");
}

/// `vakt user add NAME --role staff --staff ID`: `vakt user add`, its password on stdin;
/// (success, what it printed).
fn user_add(config: &std::path::Path, name: &str, staff: &str) -> (bool, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["user", "add", name, "--role", "staff", "--staff", staff, "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"a long password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A staff login is tied to a staff member who exists: in the directory, or in the
/// seed the engine imports at its first start. `--staff nobody` is refused, saying
/// what to do, where it used to be stored and match no one, ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_login_for_no_one_is_refused() {
    let dir = temp_dir("user-staff");
    let v = Vakt::start(&Backend::embedded(&dir), &dir);
    let (ok, said) = user_add(&v.config, "kari", "nobody");
    assert!(!ok && said.contains("no staff member nobody") && said.contains("vakt import staff"), "{said}");
    let (ok, said) = user_add(&v.config, "kari", "near");
    assert!(ok, "{said}");
    // A database vakt has not seeded yet: the seed's staff count.
    let fresh = temp_dir("user-staff-fresh");
    for f in ["residents.csv", "staff.csv"] {
        std::fs::copy(dir.join(f), fresh.join(f)).unwrap();
    }
    let config = fresh.join("vakt.toml");
    std::fs::write(&config, std::fs::read_to_string(&v.config).unwrap().replace(&dir.display().to_string(), &fresh.display().to_string())).unwrap();
    let (ok, said) = user_add(&config, "ola", "middle");
    assert!(ok, "{said}");
    let (ok, said) = user_add(&config, "per", "nobody");
    assert!(!ok && said.contains("no staff member nobody"), "{said}");
}
