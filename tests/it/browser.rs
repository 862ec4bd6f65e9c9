//! The real-browser test: Debian's Chromium driven by playwright-core
//! (`tests/browser/e2e.mjs`), against the real `vakt` binary on its embedded defaults.
//! The script logs an operator and a staff member in, in two browser contexts; this
//! side sends the alarm over MQTT when the script says READY; the script follows it
//! through the staff app and the dashboard. A second script (`set-aside.mjs`) checks
//! the flag on an incident vakt set aside. Screenshots: target/browser-artifacts/.
//!
//! Needs `chromium` (Debian's package) and `npm ci` in tests/browser; `.ci/run` installs
//! both. Under CI (`CI` set) their absence fails the test; elsewhere it is skipped with a
//! message saying how to install them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::live::support::{Backend, Client, FJORD_TOML, STAFF_CSV, Vakt, alarm, residents_csv, temp_dir};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_tools() -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let have = Path::new(CHROMIUM).exists()
        && root.join("node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have {
        let how = "install Debian's chromium (apt-get install chromium) and run `npm ci` in tests/browser (.ci/run does both)";
        assert!(std::env::var_os("CI").is_none(), "the browser test needs its tools under CI: {how}");
        eprintln!("SKIPPED the browser test: {how}");
    }
    have
}

pub fn add_user(v: &Vakt, name: &str, password: &str, args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["user", "add", name])
        .args(args)
        .arg("--config")
        .arg(&v.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "vakt user add {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a browser script of `tests/browser/` against `v` with `env` (screenshots in
/// target/browser-artifacts/): it must end with PASS within 120 s.
async fn browser_script(v: &Vakt, name: &str, env: &[(&str, &str)]) {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(name);
    let mut node = Command::new("node");
    node.arg(script).env("VAKT_URL", format!("http://{}", v.http)).env("VAKT_ARTIFACTS", &artifacts).env("CHROMIUM", CHROMIUM).envs(env.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(120), tokio::task::spawn_blocking(move || node.output().expect("node")))
        .await
        .unwrap_or_else(|_| panic!("{name} finished within 120 s"))
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim_end().ends_with("PASS"), "{said}\n--- vakt log ---\n{}", v.log());
}

/// Runs a script of `tests/browser/` in Node (no browser): it must print PASS.
fn node_script(name: &str) {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "this test needs Node.js under CI");
        eprintln!("SKIPPED: no node");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser").join(name);
    let out = Command::new("node").arg(&script).output().expect("node");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.starts_with("PASS"), "{said}");
}

/// The pages' reload throttle (`web/common.js`), run by Node: it keeps up under a steady
/// stream of events, never overlaps itself, and runs after the last event.
#[test]
fn the_pages_reload_throttle_keeps_up_with_a_busy_stream() {
    node_script("throttle.mjs");
}

/// Every text the pages show has its Bokmål (`web/i18n.js`), with the same placeholders,
/// and every error code a person can meet has one too (`tests/browser/i18n.mjs`).
#[test]
fn every_text_of_the_pages_has_its_bokmal() {
    node_script("i18n.mjs");
}

/// A ladder slow enough for a person (or a browser) to answer.
pub const HUMAN_LADDER_TOML: &str = "[defaults.ladder]\noffer_timeout_secs = 40\nbroadcast_after_secs = 50\nbackup_after_secs = 55\nalert_after_secs = 60\n";

#[tokio::test(flavor = "multi_thread")]
async fn operator_sees_the_alarm_live_and_the_staff_app_takes_it() {
    if !browser_tools() {
        return;
    }
    let dir = temp_dir("browser");
    let mut backend = Backend::embedded(&dir);
    // A tile server that is not there: the map must still show the positions.
    backend.http_extra = "tiles = \"http://127.0.0.1:9/{z}/{x}/{y}.png\"\ntiles_attribution = \"Tiles: the municipality's server\"".into();
    let v = Vakt::start_with(&backend, &dir, &format!("{HUMAN_LADDER_TOML}{FJORD_TOML}"), &residents_csv(), STAFF_CSV);
    add_user(&v, "ops", "operator-password", &["--role", "operator", "--centre", "backup-centre"]);
    add_user(&v, "kari", "staff-password", &["--role", "staff", "--staff", "near"]);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);

    let mut node = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/e2e.mjs"))
        .env("VAKT_URL", format!("http://{}", v.http))
        .env("VAKT_USERS", "ops,operator-password,kari,staff-password")
        .env("VAKT_ARTIFACTS", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let stdout = node.stdout.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    let run = async {
        while let Some(line) = lines.recv().await {
            if line == "READY" {
                device.publish_json("vakt/v1/alarms/fjord", alarm("browser-1", "r1", "fall")).await;
                // And one for a resident vakt does not know: refused, on the dashboard in red.
                device.publish_json("vakt/v1/alarms/fjord", alarm("browser-2", "nobody-7", "fall")).await;
                // And a base unit's last will: offline, listed on the dashboard with its
                // resident (its alarm would come after the grace, 300 s, beyond the test).
                let will = serde_json::json!({ "state": "offline", "resident_id": "r2", "connected_at": "2026-11-20T06:00:00Z" });
                device.publish_json("vakt/v1/gateways/fjord/gw-hall", will).await;
            }
            said.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run).await.expect("the browser test finished within 180 s");
    // stdout is closed: the script has ended (or is ending).
    let out = node.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser test failed:\n{}\n{stderr}\n--- vakt log ---\n{}", said.join("\n"), v.log());
    assert_eq!(said.last().map(String::as_str), Some("PASS"), "{}", said.join("\n"));
    for shot in [
        "dashboard-1-alarm-red",
        "app-2-offer",
        "dashboard-2-accepted-yellow",
        "dashboard-3-closed-green",
        "app-4-password-changed",
        "app-5-bokmal",
        "dashboard-4-bokmal",
    ] {
        let len = std::fs::metadata(artifacts.join(format!("{shot}.png"))).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {shot}.png missing or empty");
    }

    // What the browser did is in the store: the engine's events and the audit trail.
    let store = v.store().await;
    let kinds: Vec<String> = store.incident_events(1).await.unwrap().into_iter().map(|e| e.kind).collect();
    for want in ["raised", "offered", "answered", "accepted", "en_route", "on_site", "closed"] {
        assert!(kinds.iter().any(|k| k == want), "no {want} event: {kinds:?}");
    }
    let audit: Vec<(String, String, String)> = store.incident_audit(1).await.unwrap().into_iter().map(|a| (a.username, a.action, a.outcome)).collect();
    let expected: Vec<(String, String, String)> = [("ops", "note"), ("kari", "accept"), ("kari", "en_route"), ("kari", "on_site"), ("kari", "close")]
        .iter()
        .map(|(u, a)| ((*u).to_owned(), (*a).to_owned(), "ok".to_owned()))
        .collect();
    assert_eq!(audit, expected);
}

/// An incident whose timer made the engine fail (a fault injected by alarm id) is set
/// aside; after the restart the dashboard flags it for people, in English and Bokmål
/// (`tests/browser/set-aside.mjs`).
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_set_aside_is_flagged_on_the_dashboard() {
    if !browser_tools() {
        return;
    }
    let dir = temp_dir("browser-set-aside");
    let mut backend = Backend::embedded(&dir);
    backend.env.push(("VAKT_FAULT_PANIC_ON_TIMER".into(), "stuck-b".into()));
    let mut v = Vakt::start(&backend, &dir);
    add_user(&v, "ops", "operator-password", &["--role", "operator", "--centre", "backup-centre"]);
    add_user(&v, "kari", "staff-password", &["--role", "staff", "--staff", "near"]);
    {
        let near = Client::connect(backend.mqtt_port(), &[]).await;
        near.publish_json("vakt/v1/staff/near/status", serde_json::json!({ "state": "on_duty", "position": { "lat": 61.2302, "lon": 7.1003 } })).await;
        near.publish_json("vakt/v1/alarms/fjord", alarm("stuck-b", "r1", "fall")).await;
        // The offer expires after 2 s: its timer fails the engine, which sets it aside and ends.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while v.child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "vakt did not end:\n{}", v.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    v.restart();
    browser_script(&v, "set-aside.mjs", &[("VAKT_USERS", "ops,operator-password,kari,staff-password"), ("VAKT_INCIDENT", "1")]).await;
    let store = v.store().await;
    let kinds: Vec<String> = store.incident_events(1).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.ends_with(&["set_aside".to_owned(), "answered".to_owned(), "accepted".to_owned()]), "{kinds:?}");
}

/// The dashboard's alarm devices (`tests/browser/devices.mjs`): two registered, one of
/// them fallen silent, and an unknown account's frame refused.
#[tokio::test(flavor = "multi_thread")]
async fn alarm_devices_and_silent_ones_are_on_the_dashboard() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !browser_tools() {
        return;
    }
    let dir = temp_dir("browser-devices");
    let backend = Backend::embedded(&dir);
    let dc09 = crate::live::support::free_port();
    let toml = format!("{}{FJORD_TOML}\n[dc09]\nlisten = \"127.0.0.1:{dc09}\"\n\n[devices]\nsupervision_grace_secs = 1\n", crate::live::support::LADDER_TOML);
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    add_user(&v, "admin", "admin-password", &["--role", "admin"]);
    let csv = dir.join("devices.csv");
    std::fs::write(&csv, "device_id,protocol,account,resident_id,key,heartbeat_secs\nsmoke-1,dc09,5555,r5,,10\npanel-1,dc09,1234,r1,,\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vakt")).args(["import", "devices"]).arg(&csv).arg("--config").arg(&v.config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let registered = crate::live::support::eventually(Duration::from_secs(15), || async { (v.metric("vakt_devices_registered") == 2.0).then_some(()) }).await;
    assert!(registered.is_some(), "the engine took the register\n{}", v.log());
    // Each account's link test (the frames as vakt's own codec builds them: the device
    // tests check it against an independent one), answered before the next.
    let mut link = tokio::net::TcpStream::connect(("127.0.0.1", dc09)).await.unwrap();
    for account in ["5555", "1234", "9999"] {
        link.write_all(&vakt::live::devices::dc09::frame(&format!("\"NULL\"0001L0#{account}[]"))).await.unwrap();
        let mut answer = [0u8; 128];
        let n = tokio::time::timeout(Duration::from_secs(5), link.read(&mut answer)).await.unwrap().unwrap();
        assert!(n > 0, "{account} answered");
    }
    let silent = crate::live::support::eventually(Duration::from_secs(30), || async { (v.metric("vakt_devices_silent") == 1.0).then_some(()) }).await;
    assert!(silent.is_some(), "smoke-1 fell silent\n{}", v.log());
    browser_script(&v, "devices.mjs", &[("VAKT_USERS", "admin,admin-password")]).await;
}

/// An alarm past the target on the dashboard (`tests/browser/overdue.mjs`), on a vakt
/// whose target is 3 s and whose ladder fits inside it.
#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_past_the_target_is_unmistakable_and_missed_at_once() {
    if !browser_tools() {
        return;
    }
    let dir = temp_dir("browser-overdue");
    let backend = Backend::embedded(&dir);
    let ladder = "[defaults.ladder]\noffer_timeout_secs = 1\nbroadcast_after_offers = 2\nbroadcast_after_secs = 1\nbackup_after_secs = 2\nalert_after_secs = 4\nretry_secs = 1\n";
    let toml = format!("{ladder}\n[engine]\ntarget_answer_secs = 3\n{FJORD_TOML}");
    let v = Vakt::start_with(&backend, &dir, &toml, &residents_csv(), STAFF_CSV);
    add_user(&v, "admin", "admin-password", &["--role", "admin"]);
    // Someone on duty who never answers, so that the ladder widens to everyone.
    let far = Client::connect(backend.mqtt_port(), &[]).await;
    far.publish_json("vakt/v1/staff/far/status", serde_json::json!({ "state": "on_duty", "position": { "lat": 61.25, "lon": 7.2 } })).await;
    let device = Client::connect(backend.mqtt_port(), &[]).await;
    device.publish_json("vakt/v1/alarms/fjord", alarm("late-b", "r1", "fall")).await;
    browser_script(&v, "overdue.mjs", &[("VAKT_USERS", "admin,admin-password")]).await;
}
