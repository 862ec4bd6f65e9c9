//! The `vakt` command line. Thin: parse arguments, load configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
vakt: welfare-technology alarm response engine

Usage:
  vakt [run] [--config FILE]                   run the live engine (default): MQTT in and out,
                                               store, /metrics /healthz /readyz; stop with Ctrl-C
  vakt import residents|staff FILE.csv [--config FILE]
                                               fill the directory (columns: README.md)
  vakt user add USERNAME --role operator|staff|planner|admin [--staff STAFF_ID]
                [--centre CENTRE_ID] [--replace] [--config FILE]
                                               add a web user (asks for the password; or pipe
                                               it in on one line); --replace changes one
  vakt user list [--config FILE]               list the web users
  vakt user remove USERNAME [--config FILE]    remove a web user; their sessions end
  vakt simulate --scenario FILE [--alarms HISTORY.csv] [--seed N] [--out DIR]
                                               replay a year of alarms through the response
                                               models (docs/simulation.md)
  vakt demo [--config FILE]                    play a scripted demo morning through the core engine
  vakt check-config FILE                       validate a configuration file and summarise it
  vakt help                                    this text

Without --config, the built-in config/default.toml is used: an embedded MQTT broker on
127.0.0.1:1883, an SQLite file vakt.sqlite in the current directory, HTTP on 127.0.0.1:8080.
Logs: RUST_LOG (default info, without the embedded broker's own log: see docs/operations.md).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vakt: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (command, rest) = match args.first().map(String::as_str) {
        None => ("run", args),
        Some(c) if c.starts_with("--") => ("run", args),
        Some(c) => (c, &args[1..]),
    };
    match command {
        "run" => {
            let config = config_flag(rest, "run")?;
            let settings = load_settings(config.as_deref())?;
            init_tracing();
            runtime()?.block_on(vakt::live::run(settings, config.as_deref().and_then(|p| p.parent()))).map_err(|e| format!("{e:#}"))
        }
        "import" => {
            let [what, file, flags @ ..] = rest else { return Err(format!("import takes residents|staff FILE.csv\n\n{USAGE}")) };
            let config = config_flag(flags, "import")?;
            let (settings, engine) = vakt::settings::load(config.as_deref()).map_err(|e| e.to_string())?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            let url = settings.database.url.clone();
            runtime()?.block_on(async move {
                let store = vakt::live::store::Store::open(&url).await?;
                let now = vakt::live::clock::wall_clock().as_millis();
                let n = match what.as_str() {
                    "residents" => {
                        let rows = vakt::live::directory::parse_residents(&text, &engine)?;
                        store.upsert_residents(&rows, now).await?;
                        // A regular helper who is not (yet) in the directory is only a
                        // preference that never applies: said, not refused (the staff
                        // may be imported next).
                        let staff: std::collections::BTreeSet<String> = store.staff_names().await?.into_iter().map(|n| n.staff_id).collect();
                        for r in &rows {
                            for h in r.regular_helpers.iter().filter(|h| !staff.contains(h.as_str())) {
                                eprintln!("note: resident {} names regular helper {h}, who is not in the staff directory: import them, or the preference never applies", r.id);
                            }
                        }
                        rows.len()
                    }
                    "staff" => {
                        let rows = vakt::live::directory::parse_staff(&text, &engine)?;
                        store.upsert_staff(&rows, now).await?;
                        rows.len()
                    }
                    other => anyhow::bail!("import what? {other:?}: residents or staff"),
                };
                println!("imported {n} {what} into {}; a running engine picks them up within 5 s", vakt::live::store::redact(&url));
                store.close().await;
                Ok(())
            })
            .map_err(|e| format!("{e:#}"))
        }
        "user" => user_command(rest),
        "simulate" => {
            let mut opts = vakt::sim::Options { scenario: PathBuf::new(), alarms: None, seed: None, out: None };
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
                match flag.as_str() {
                    "--scenario" => opts.scenario = PathBuf::from(value),
                    "--alarms" => opts.alarms = Some(PathBuf::from(value)),
                    "--seed" => opts.seed = Some(value.parse().map_err(|_| format!("--seed {value:?} is not a number"))?),
                    "--out" => opts.out = Some(PathBuf::from(value)),
                    other => return Err(format!("simulate does not take {other}\n\n{USAGE}")),
                }
            }
            if opts.scenario.as_os_str().is_empty() {
                return Err(format!("simulate needs --scenario FILE\n\n{USAGE}"));
            }
            let stdout = std::io::stdout();
            vakt::sim::run_cli(opts, &mut stdout.lock())
        }
        "demo" => {
            let config = match rest {
                [] => None,
                [flag, file] if flag == "--config" => Some(PathBuf::from(file)),
                _ => return Err(format!("demo takes only --config FILE\n\n{USAGE}")),
            };
            let (_, engine_config) = vakt::settings::load(config.as_deref()).map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            vakt::demo::run(engine_config, &mut stdout.lock()).map_err(|e| e.to_string())?;
            Ok(())
        }
        "check-config" => {
            let [file] = rest else { return Err(format!("check-config takes one FILE\n\n{USAGE}")) };
            let (_, c) = vakt::settings::load(Some(PathBuf::from(file).as_path())).map_err(|e| e.to_string())?;
            println!("{file}: valid. Target {} s.", c.target_answer.as_secs());
            for m in &c.municipalities {
                let centre = m.response_centre.as_ref().map_or(String::new(), |c| format!(" via {c}"));
                let backup = match &m.backup {
                    Some(vakt::core::Backup::Centre(c)) => format!(", backup centre {c}"),
                    Some(vakt::core::Backup::Team(t)) => format!(", backup team {t}"),
                    None => String::new(),
                };
                println!("  {:<10} {:<24} pop {:>6}  {}{centre}{backup}", m.id.as_str(), m.name, m.population, m.model);
            }
            for centre in &c.centres {
                let backup = centre.backup.as_ref().map_or(String::new(), |b| format!(", overflow to {b}"));
                println!("  centre {} ({:?}, {} operators{backup})", centre.id, centre.kind, centre.operators_on_duty);
            }
            Ok(())
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

fn user_command(rest: &[String]) -> Result<(), String> {
    use vakt::live::accounts::{Role, User};
    let (sub, args) = rest.split_first().ok_or_else(|| format!("user takes add, list or remove\n\n{USAGE}"))?;
    let mut username = None;
    let (mut role, mut staff, mut centre, mut config, mut replace) = (None, None, None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--role" => role = Some(value()?),
            "--staff" => staff = Some(value()?),
            "--centre" => centre = Some(value()?),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--replace" => replace = true,
            s if !s.starts_with("--") && username.is_none() && (sub == "add" || sub == "remove") => username = Some(s.to_owned()),
            other => return Err(format!("user {sub} does not take {other}\n\n{USAGE}")),
        }
    }
    let settings = load_settings(config.as_deref())?;
    let url = settings.database.url.clone();
    match sub.as_str() {
        "list" => runtime()?.block_on(async move {
            let store = vakt::live::store::Store::open(&url).await?;
            for u in store.users().await? {
                let link = u.staff_id.map(|s| format!(" staff {s}")).or(u.centre.map(|c| format!(" centre {c}"))).unwrap_or_default();
                println!("{} {}{link}", u.username, u.role.as_str());
            }
            store.close().await;
            Ok::<(), anyhow::Error>(())
        }),
        "add" => {
            let username = username.ok_or_else(|| format!("user add needs a USERNAME\n\n{USAGE}"))?;
            let role = Role::parse(role.as_deref().ok_or("user add needs --role operator|staff|planner|admin")?).map_err(|e| e.to_string())?;
            let user = User {
                username,
                role,
                staff_id: staff.map(|s| vakt::core::StaffId::parse(&s)).transpose().map_err(|e| e.to_string())?,
                centre: centre.map(|c| vakt::core::CentreId::parse(&c)).transpose().map_err(|e| e.to_string())?,
            };
            user.validate().map_err(|e| e.to_string())?;
            let engine = settings.engine_config().map_err(|e| format!("{e:#}"))?;
            if let Some(c) = &user.centre {
                if engine.centre_index(c).is_none() {
                    let known: Vec<&str> = engine.centres.iter().map(|c| c.id.as_str()).collect();
                    return Err(format!("no centre {c} in this configuration (centres: {})", known.join(", ")));
                }
            }
            let seed_staff = match (&user.staff_id, &settings.seed.staff) {
                (Some(_), Some(src)) => {
                    let dir = config.as_deref().and_then(|p| p.parent());
                    let text = vakt::live::directory::read_source(src, dir).map_err(|e| format!("{e:#}"))?;
                    vakt::live::directory::parse_staff(&text, &engine)
                        .map_err(|e| format!("seed staff {src}: {e:#}"))?
                        .into_iter()
                        .map(|(s, _)| s.id.to_string())
                        .collect()
                }
                _ => Vec::new(),
            };
            if let Some(id) = &user.staff_id {
                // A login tied to no one would see no offers, ever, and say nothing.
                let known = runtime()?.block_on(async {
                    let store = vakt::live::store::Store::open(&url).await?;
                    let names = store.staff_names().await;
                    store.close().await;
                    anyhow::Ok(names?.into_iter().any(|n| n.staff_id == id.as_str()))
                });
                if !known.map_err(|e| format!("{e:#}"))? && !seed_staff.iter().any(|s| s == id.as_str()) {
                    return Err(format!(
                        "no staff member {id} in the directory of {}: import them first (vakt import staff FILE.csv, same --config), then add the user",
                        vakt::live::store::redact(&url)
                    ));
                }
            }
            let password = read_password(&user.username)?;
            let hash = vakt::live::accounts::hash_password(&password).map_err(|e| e.to_string())?;
            runtime()?.block_on(async move {
                let store = vakt::live::store::Store::open(&url).await?;
                let now = vakt::live::clock::wall_clock().as_millis();
                store.put_user(&user, &hash, now, replace).await?;
                println!("{} user {} ({}) in {}", if replace { "stored" } else { "added" }, user.username, user.role.as_str(), vakt::live::store::redact(&url));
                store.close().await;
                Ok::<(), anyhow::Error>(())
            })
        }
        "remove" => {
            let username = username.ok_or_else(|| format!("user remove needs a USERNAME\n\n{USAGE}"))?;
            runtime()?.block_on(async move {
                let store = vakt::live::store::Store::open(&url).await?;
                let removed = store.remove_user(&username).await?;
                store.close().await;
                anyhow::ensure!(removed, "no user {username:?}");
                println!("removed user {username}; their sessions have ended");
                Ok(())
            })
        }
        other => return Err(format!("user {other}? add, list or remove\n\n{USAGE}")),
    }
    .map_err(|e| format!("{e:#}"))
}

/// The password: asked for twice without echo on a terminal, else one line from stdin.
fn read_password(username: &str) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal, Write};
    let read_line = || -> Result<String, String> {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    if !std::io::stdin().is_terminal() {
        return read_line();
    }
    let echo = |on: bool| {
        let _ = std::process::Command::new("stty").arg(if on { "echo" } else { "-echo" }).stdin(std::process::Stdio::inherit()).status();
    };
    let ask = |prompt: &str| -> Result<String, String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        echo(false);
        let r = read_line();
        echo(true);
        eprintln!();
        r
    };
    let first = ask(&format!("password for {username} (at least {} characters): ", vakt::live::accounts::MIN_PASSWORD_LEN))?;
    let second = ask("again: ")?;
    if first != second {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

fn config_flag(rest: &[String], command: &str) -> Result<Option<PathBuf>, String> {
    match rest {
        [] => Ok(None),
        [flag, file] if flag == "--config" => Ok(Some(PathBuf::from(file))),
        _ => Err(format!("{command} takes only --config FILE\n\n{USAGE}")),
    }
}

fn load_settings(config: Option<&std::path::Path>) -> Result<vakt::settings::Settings, String> {
    let (settings, _) = vakt::settings::load(config).map_err(|e| e.to_string())?;
    Ok(settings)
}

/// The log filter without `RUST_LOG`. The embedded broker (rumqttd) logs every client
/// that disconnects, and the readiness probe at start, as an error; an operator's alert
/// on errors would go off every night for nothing. What matters of the broker shows in
/// vakt's own lines (its MQTT connection, the broker thread ending), so its log is off
/// unless asked for: `RUST_LOG=info,rumqttd=info`.
const DEFAULT_LOG: &str = "info,rumqttd=off";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}
