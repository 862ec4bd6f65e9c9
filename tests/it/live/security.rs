//! TLS and passwords to an external broker, and the shipped access control.

use super::*;

/// An external broker over TLS (a private CA, trusted through SSL_CERT_FILE) with a
/// username and password: `mqtt.url = "mqtts://user:password@host:port"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_password_to_an_external_broker() {
    let dir = temp_dir("tls");
    let sh = |cmd: &str| sh_in(&dir, cmd);
    private_ca_and_server(&dir);
    sh("mosquitto_passwd -b -c passwd vakt 's3cret' && chmod 0644 passwd server.key");
    let (tls_port, plain_port) = (free_port(), free_port());
    let conf = dir.join("mosquitto.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings true\nlistener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\npassword_file {d}/passwd\nallow_anonymous false\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )
    .unwrap();
    let broker = mosquitto_on(&conf, plain_port);
    let mut backend = Backend::sqlite_on(plain_port, &dir);
    backend.mqtt_url = Some(format!("mqtts://vakt:s3cret@localhost:{tls_port}"));
    backend.env.push(("SSL_CERT_FILE".into(), format!("{d}/ca.pem")));
    let v = Vakt::start(&backend, &dir);
    // Devices on the plain listener, vakt on TLS: the alarm crosses over.
    let mut ops = Client::connect(plain_port, OPS).await;
    let device = Client::connect(plain_port, &[]).await;
    // A message too large, then an alarm: refused, and the alarm comes through.
    device.publish("vakt/v1/alarms/fjord", vec![b'x'; 1_100_000]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("t-1", "r1", "fall")).await;
    ops.expect("vakt/v1/rejects", "the big one refused over TLS", |r| r["reason"] == "payload_too_large").await;
    ops.expect("vakt/v1/incidents/fjord", "raised over TLS", |e| e["type"] == "raised" && e["alarm_id"] == "t-1").await;
    assert_eq!(v.metric("vakt_mqtt_connection_errors_total"), 0.0);
    assert!(v.log().contains("MQTT connected"));
    drop(v);
    drop(broker);
}

/// A shell command in `dir`, which must succeed.
/// In `dir`, by openssl: a private CA (`ca.pem`) and a server certificate it signed for
/// localhost and 127.0.0.1 (`server.pem`, key `server.key`).
pub(super) fn private_ca_and_server(dir: &std::path::Path) {
    let sh = |cmd: &str| sh_in(dir, cmd);
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=vakt test CA' 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null");
    sh(
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null",
    );
}

fn sh_in(dir: &std::path::Path, cmd: &str) {
    let out = std::process::Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Mosquitto on the configuration `conf`, once it takes connections on `port`; it ends
/// with the value (a failed test leaves no broker behind).
fn mosquitto_on(conf: &std::path::Path, port: u16) -> Broker {
    let broker = std::process::Command::new("mosquitto").arg("-c").arg(conf).stderr(std::process::Stdio::null()).spawn().unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(broker)
}

struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker access control shipped in `config/mosquitto/vakt.acl` (plus a gateway for
/// the test's municipality), on a Mosquitto that wants a password from every client:
/// vakt works through it; a client with no password is refused; a staff member's app
/// reads only its own offers, even with a wildcard, and cannot answer for another; a
/// gateway sends only its own municipality's alarms; an integration reads the incidents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_broker_access_control_keeps_each_client_to_its_own() {
    let dir = temp_dir("acl");
    let users = [("vakt", "vakt-pass"), ("near", "near-pass"), ("far", "far-pass"), ("gateway-fjord", "gateway-pass"), ("integration", "integration-pass")];
    sh_in(&dir, "touch passwd && chmod 0644 passwd");
    for (user, password) in users {
        sh_in(&dir, &format!("mosquitto_passwd -b passwd {user} {password}"));
    }
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mosquitto/vakt.acl")).unwrap();
    std::fs::write(
        dir.join("acl"),
        format!("{shipped}\nuser gateway-fjord\ntopic write vakt/v1/alarms/fjord\ntopic write vakt/v1/gateways/fjord/gateway-fjord\n"),
    )
    .unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwd\nacl_file {d}/acl\n")).unwrap();
    let broker = mosquitto_on(&conf, port);
    let mut backend = Backend::sqlite_on(port, &dir);
    backend.mqtt_url = Some(format!("mqtt://vakt:vakt-pass@127.0.0.1:{port}"));
    let v = Vakt::start(&backend, &dir);

    // No password, no entry.
    let (anonymous, mut eventloop) = rumqttc::AsyncClient::new(rumqttc::MqttOptions::new(unique("anonymous"), "127.0.0.1", port), 10);
    let refused = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await.expect("an answer in time");
    assert!(matches!(refused, Err(rumqttc::ConnectionError::ConnectionRefused(_))), "{refused:?}");
    drop(anonymous);

    let mut ops = Client::connect_as(port, OPS, "integration", "integration-pass").await;
    // near tries to read every staff member's offers.
    let mut near = Client::connect_as(port, &["vakt/v1/staff/+/offers"], "near", "near-pass").await;
    let mut far = Client::connect_as(port, &[&staff_topic("far", "offers")], "far", "far-pass").await;
    let gateway = Client::connect_as(port, &[], "gateway-fjord", "gateway-pass").await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    on_duty(&far, "far", 61.3000, 7.2500).await;
    wait_metric(&v, "vakt_staff_on_duty", 2.0).await;

    // Another municipality's topic is not the gateway's: the broker drops it (vakt would
    // refuse it as unknown_municipality if it came through).
    gateway.publish_json("vakt/v1/alarms/elsewhere", alarm("x-1", "r1", "fall")).await;
    gateway.publish_json("vakt/v1/alarms/fjord", alarm("a-1", "r1", "fall")).await;
    ops.expect("vakt/v1/incidents/fjord", "raised", |e| is(e, "raised", 1)).await;
    near.expect(&staff_topic("near", "offers"), "near's offer", |m| is(m, "offer", 1)).await;
    // near answers for far (dropped), then declines for itself: the offer goes to far.
    near.publish_json(&staff_topic("far", "replies"), json!({ "incident_id": 1, "action": "accept" })).await;
    reply(&near, "near", 1, "decline").await;
    near.expect(&staff_topic("near", "offers"), "the decline confirmed", |m| is(m, "confirmed", 1)).await;
    far.expect(&staff_topic("far", "offers"), "far's offer", |m| is(m, "offer", 1)).await;
    // far's offer went out before near's confirmation: near would have it by now.
    assert!(near.try_take(|t, _| t != staff_topic("near", "offers")).is_none(), "near read another's offer");
    reply(&far, "far", 1, "accept").await;
    let accepted = ops.expect("vakt/v1/incidents/fjord", "accepted", |e| is(e, "accepted", 1)).await;
    assert_eq!(accepted["staff_id"], "far");
    let store = v.store().await;
    let accepts = store.incident_events(1).await.unwrap().into_iter().filter(|e| e.kind == "accepted").count();
    assert_eq!(accepts, 1, "the forged accept never reached vakt");
    assert_eq!(v.metric("vakt_messages_rejected_total{reason=\"unknown_municipality\"}"), 0.0, "the other municipality's alarm never reached vakt");
    assert_eq!(v.metric("vakt_alarms_received_total{municipality=\"fjord\"}"), 1.0);
    // Its status under another gateway's id is dropped; under its own, it gets through.
    gateway.publish_json("vakt/v1/gateways/fjord/gateway-other", json!({ "state": "offline" })).await;
    gateway.publish_json("vakt/v1/gateways/fjord/gateway-fjord", json!({ "state": "online" })).await;
    wait_metric(&v, GW_ONLINE, 1.0).await;
    assert_eq!(v.metric(GW_OFFLINE), 0.0, "the status under another's id never reached vakt");
    store.close().await;
    drop(v);
    drop(broker);
}
