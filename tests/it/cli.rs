//! The command line as a newcomer meets it: every command's help, the version, the
//! configuration from the environment, and a taken port's one-line fix.

use std::process::{Command, Output};

fn vakt(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vakt")).args(args).env_remove("VAKT_CONFIG").env_remove("VAKT_DATABASE_URL").envs(env.iter().copied()).output().unwrap()
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `vakt --help`, `vakt COMMAND --help` for every command and `vakt --version` print
/// and exit 0; each command's help lists its options with their meaning.
#[test]
fn every_command_has_its_help_and_the_version_is_told() {
    let commands: &[&[&str]] =
        &[&[], &["run"], &["import"], &["user"], &["user", "add"], &["user", "list"], &["user", "remove"], &["simulate"], &["demo"], &["check-config"]];
    for command in commands {
        let args: Vec<&str> = command.iter().copied().chain(["--help"]).collect();
        let out = vakt(&args, &[]);
        assert!(out.status.success(), "vakt {}: {}", args.join(" "), said(&out));
        assert!(said(&out).contains("Usage: vakt"), "vakt {}: {}", args.join(" "), said(&out));
    }
    let help = said(&vakt(&["--help"], &[]));
    for option in ["--config", "--mqtt-listen", "--http-listen", "--database-url", "VAKT_CONFIG", "check-config", "simulate"] {
        assert!(help.contains(option), "vakt --help does not list {option}:\n{help}");
    }
    let user_add = said(&vakt(&["user", "add", "--help"], &[]));
    assert!(user_add.contains("--role") && user_add.contains("operator") && user_add.contains("--staff"), "{user_add}");
    let out = vakt(&["--version"], &[]);
    assert!(out.status.success() && said(&out).contains(env!("CARGO_PKG_VERSION")), "{}", said(&out));
    // A mistake is said, with the usage, and exits 2.
    let out = vakt(&["simulate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(said(&out).contains("--scenario"), "{}", said(&out));
}

/// `VAKT_CONFIG` works as `--config`.
#[test]
fn the_configuration_can_come_from_the_environment() {
    let indre_sogn = concat!(env!("CARGO_MANIFEST_DIR"), "/config/indre-sogn.toml");
    let by_flag = vakt(&["demo", "--config", indre_sogn], &[]);
    let by_env = vakt(&["demo"], &[("VAKT_CONFIG", indre_sogn)]);
    assert!(by_flag.status.success() && by_env.status.success(), "{}", said(&by_env));
    assert!(said(&by_env).contains("sogndal"), "{}", said(&by_env));
    assert_eq!(said(&by_flag), said(&by_env));
}

/// Port 1883 taken (another broker, say): vakt says so, and how to run on another port
/// from the command line; that command then works.
#[test]
fn a_taken_port_has_a_one_line_fix() {
    let dir = crate::live::support::temp_dir("cli-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let db = format!("sqlite://{}", dir.join("vakt.sqlite").display());
    let http = format!("127.0.0.1:{}", crate::live::support::free_port());
    let out = vakt(&["run", "--mqtt-listen", &format!("127.0.0.1:{port}"), "--http-listen", &http, "--database-url", &db], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    let fix = format!("--mqtt-listen 127.0.0.1:{}", port + 1);
    assert!(said(&out).contains(&fix), "the error names the fix ({fix}):\n{}", said(&out));
    // The fix: another port, on the command line alone (here a free one).
    let free = crate::live::support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vakt"))
        .args(["--mqtt-listen", &format!("127.0.0.1:{free}"), "--http-listen", &http, "--database-url", &db])
        .env_remove("VAKT_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = http.parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while crate::live::support::http_get(addr, "/readyz").is_none_or(|(code, _)| code != 200) {
        assert!(std::time::Instant::now() < deadline, "not ready within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(taken);
}
