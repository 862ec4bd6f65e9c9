//! The live engine end to end: the real binary, real MQTT clients, real stores.
//! Against the embedded defaults (rumqttd + SQLite) and the machine's Mosquitto and
//! PostgreSQL (started by .ci/run). By theme: `end_to_end` (an incident's whole life,
//! bad input, the directory), `faults` (a panic in vakt, a kill), `outages` (the broker
//! or the database away or hanging), `checkpoints`, `gateways` (and base units),
//! `devices` (DC-09 and SCAIP devices, played by independent implementations),
//! `security` (TLS, the broker's access control), `hostile` (what a sender cannot do).

mod checkpoints;
mod devices;
mod end_to_end;
mod faults;
mod gateways;
mod hostile;
mod outages;
mod security;
pub mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const OPS: &[&str] = &["vakt/v1/incidents/fjord", "vakt/v1/rejects"];

fn staff_topic(s: &str, what: &str) -> String {
    format!("vakt/v1/staff/{s}/{what}")
}

async fn on_duty(c: &Client, staff: &str, lat: f64, lon: f64) {
    c.publish_json(&staff_topic(staff, "status"), json!({ "state": "on_duty", "position": { "lat": lat, "lon": lon } })).await;
}

async fn reply(c: &Client, staff: &str, incident: u64, action: &str) {
    c.publish_json(&staff_topic(staff, "replies"), json!({ "incident_id": incident, "action": action })).await;
}

/// vakt on the embedded defaults, an operations console and a device.
async fn embedded_with_clients(name: &str) -> (std::path::PathBuf, Backend, Vakt, Client, Client) {
    let dir = temp_dir(name);
    let backend = Backend::embedded(&dir);
    let v = Vakt::start(&backend, &dir);
    let ops = Client::connect(backend.mqtt_port(), OPS).await;
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    (dir, backend, v, ops, device)
}

/// An operations console, a device, and staff member `near` on duty with their app.
async fn clients_with_near_on_duty(v: &Vakt, port: u16) -> (Client, Client, Client) {
    let ops = Client::connect(port, OPS).await;
    let device = Client::connect(port, &[]).await;
    let near = Client::connect(port, &[&staff_topic("near", "offers")]).await;
    on_duty(&near, "near", 61.2302, 7.1003).await;
    wait_metric(v, "vakt_staff_on_duty", 1.0).await;
    (ops, device, near)
}

/// The alarm ids of the `raised` events stored for incidents 1..=`incidents`, in
/// incident order.
async fn raised_alarm_ids(store: &vakt::live::store::Store, incidents: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for inc in 1..=incidents {
        for event in store.incident_events(inc).await.unwrap() {
            if event.kind == "raised" {
                let e: Value = serde_json::from_str(&event.body).unwrap();
                ids.push(e["alarm_id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

/// GET `path` of vakt's API as an admin (the first call adds the user and a session).
async fn api_as_admin(v: &Vakt, store: &vakt::live::store::Store, path: &str) -> Value {
    use vakt::live::accounts::{Role, User, hash_password, token_digest};
    if store.users().await.unwrap().is_empty() {
        let user = User { username: "admin".into(), role: Role::Admin, staff_id: None, centre: None };
        store.put_user(&user, &hash_password("a long password").unwrap(), 0, true).await.unwrap();
        let now = vakt::live::clock::wall_clock().as_millis();
        store.create_session(&token_digest("admin-token"), "admin", "csrf", now, now + 3_600_000).await.unwrap();
    }
    let (code, _, body) = http_get_with(v.http, path, &["Authorization: Bearer admin-token"]).unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits (up to 5 s) for a stored checkpoint that `pred` accepts, with the input log cut
/// to fewer than `log_below` records; its state.
async fn checkpoint_when(store: &vakt::live::store::Store, log_below: i64, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    eventually(Duration::from_secs(5), || async {
        let state: Value = serde_json::from_str(&store.latest_checkpoint().await.unwrap()?.state).unwrap();
        (pred(&state) && store.log_len().await.unwrap() < log_below).then_some(state)
    })
    .await
}

/// How many incidents `store` holds a `raised` event for.
async fn raised_count(store: &vakt::live::store::Store) -> i64 {
    store.event_count("raised").await.unwrap()
}

/// Waits (up to `within`) until `store` holds `n` raised incidents; how many it holds.
async fn raised_at_least(store: &vakt::live::store::Store, n: i64, within: Duration) -> i64 {
    eventually(within, || async { (raised_count(store).await >= n).then_some(()) }).await;
    raised_count(store).await
}

async fn wait_metric(v: &Vakt, name: &str, want: f64) {
    wait_metric_until(v, name, &format!("= {want}"), |x| x == want).await;
}

async fn wait_metric_until(v: &Vakt, name: &str, what: &str, pred: impl Fn(f64) -> bool) {
    if eventually(Duration::from_secs(15), || async { pred(v.metric(name)).then_some(()) }).await.is_none() {
        panic!("{name} never became {what} (now {})\n{}", v.metric(name), v.log());
    }
}

/// vakt on PostgreSQL and a Mosquitto of the test's own (which outlives vakt's restarts,
/// and the test's clients with it), with a fault injected (`var` = `alarm_ids`).
async fn with_fault_injected(name: &str, var: &str, alarm_ids: &str) -> (Mosquitto, u16, Vakt) {
    let dir = temp_dir(name);
    let port = free_port();
    let broker = Mosquitto::start(&dir, port);
    let mut backend = Backend::external(port).await;
    backend.env.push((var.into(), alarm_ids.into()));
    let v = Vakt::start(&backend, &dir);
    (broker, port, v)
}

/// Waits up to 15 s for vakt to end by itself; its exit status.
fn exit_status(v: &mut Vakt) -> std::process::ExitStatus {
    exit_within(v, Duration::from_secs(15))
}

fn exit_within(v: &mut Vakt, within: Duration) -> std::process::ExitStatus {
    exited_within(&mut v.child, within).unwrap_or_else(|| panic!("vakt did not end in time:\n{}", v.log()))
}

const GW_ONLINE: &str = "vakt_gateways{municipality=\"fjord\",state=\"online\"}";

const GW_OFFLINE: &str = "vakt_gateways{municipality=\"fjord\",state=\"offline\"}";
