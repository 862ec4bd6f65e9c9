//! The `vakt` command line. Thin: parse arguments (clap), load the configuration, call
//! the library. Every command and option is listed by `vakt --help` and
//! `vakt COMMAND --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// vakt: welfare-technology alarm response engine. Routes every alarm from the elderly
/// living at home to a human, and measures every answer against the 60-second target.
///
/// Without a command, vakt runs the live engine. Without --config it uses its built-in
/// configuration: an embedded MQTT broker on 127.0.0.1:1883, an SQLite file vakt.sqlite
/// in the current directory, HTTP on 127.0.0.1:8080. Logs go to stderr; RUST_LOG sets
/// their filter (default: info, without the embedded broker's own log).
#[derive(Parser)]
#[command(name = "vakt", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    database: DatabaseArg,
    /// The options of `run`, when vakt is run without a command.
    #[command(flatten)]
    run: RunArgs,
}

/// The configuration file, for every command that reads one.
#[derive(Args, Clone, Default)]
struct ConfigArg {
    /// The configuration file (TOML; every key: docs/config.md). Default: the built-in
    /// configuration (config/default.toml).
    #[arg(short, long, env = "VAKT_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

/// The database, for the commands that open it.
#[derive(Args, Clone, Default)]
struct DatabaseArg {
    /// The database, instead of the configuration's `database.url`:
    /// sqlite://FILE or postgres://user@host/db.
    #[arg(long, env = "VAKT_DATABASE_URL", hide_env_values = true, value_name = "URL", global = true)]
    database_url: Option<String>,
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Where the embedded MQTT broker listens, instead of the configuration's
    /// `mqtt.listen` (127.0.0.1:1883): another port, should that one be taken.
    #[arg(long, value_name = "ADDR:PORT")]
    mqtt_listen: Option<String>,
    /// An external MQTT broker, instead of the embedded one (the configuration's
    /// `mqtt.url`): mqtt://host:1883 or mqtts://user:password@host:8883.
    #[arg(long, value_name = "URL")]
    mqtt_url: Option<String>,
    /// Where the dashboard, the staff app, the API and /metrics are served, instead of
    /// the configuration's `http.listen` (127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the live engine (the default): alarms over MQTT in, offers and events out,
    /// everything stored; the dashboard and the staff app over HTTP; /metrics /healthz
    /// /readyz. Stop it with Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Import residents or staff from a CSV file into the configuration's database (the
    /// columns: README.md). A running engine picks the changes up within 5 s.
    Import {
        /// What the file holds.
        what: Directory,
        /// The CSV file.
        file: PathBuf,
    },
    /// Manage the users of the dashboard and the staff app.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Replay a year of alarms through every response model and compare them
    /// (docs/simulation.md).
    Simulate {
        /// The scenario (TOML): municipalities, staff, centres, costs.
        #[arg(long, value_name = "FILE")]
        scenario: PathBuf,
        /// A history of real alarms (CSV) to replay instead of the scenario's synthetic year.
        #[arg(long, value_name = "HISTORY.csv")]
        alarms: Option<PathBuf>,
        /// Another synthetic year (the randomness's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write report.csv, report.json and report.html.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Play a scripted Friday morning through the core engine and print what it did.
    Demo,
    /// Check a configuration file and summarise it: each municipality's model, centre
    /// and backup, or exactly what is wrong.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Directory {
    /// resident_id,municipality,lat,lon,address,notes,regular_helpers
    Residents,
    /// staff_id,municipality,name,roles
    Staff,
    /// device_id,protocol,account,resident_id,key,heartbeat_secs (docs/devices.md)
    Devices,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (the password is asked for twice, or read as one line from stdin).
    Add {
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A staff user's staff id (in the directory, or in the configuration's seed).
        #[arg(long, value_name = "STAFF_ID")]
        staff: Option<String>,
        /// An operator's response centre.
        #[arg(long, value_name = "CENTRE_ID")]
        centre: Option<String>,
        /// Change an existing user: a new password or role (their sessions end).
        #[arg(long)]
        replace: bool,
    },
    /// List the users.
    List,
    /// Remove a user; their sessions end.
    Remove { username: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Answers and acts on their centre's municipalities' incidents.
    Operator,
    /// Home-care staff: offers, accept, on site, close.
    Staff,
    /// Reads the dashboard without acting.
    Planner,
    /// Everything.
    Admin,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vakt: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let (config, database) = (cli.config.config.as_deref(), &cli.database);
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => {
            let mut settings = load_settings(config, database)?;
            if let Some(listen) = args.mqtt_listen {
                settings.mqtt.listen = listen;
            }
            if let Some(url) = args.mqtt_url {
                settings.mqtt.url = Some(url);
            }
            if let Some(listen) = args.http_listen {
                settings.http.listen = listen;
            }
            init_tracing();
            runtime()?.block_on(vakt::live::run(settings, config.and_then(Path::parent))).map_err(|e| format!("{e:#}"))
        }
        Command::Import { what, file } => import(what, &file, config, database),
        Command::User { action } => user_command(action, config, database),
        Command::Simulate { scenario, alarms, seed, out } => {
            let opts = vakt::sim::Options { scenario, alarms, seed, out };
            vakt::sim::run_cli(opts, &mut std::io::stdout().lock())
        }
        Command::Demo => {
            let (_, engine_config) = vakt::settings::load(config).map_err(|e| e.to_string())?;
            vakt::demo::run(engine_config, &mut std::io::stdout().lock()).map(drop).map_err(|e| e.to_string())
        }
        Command::CheckConfig { file } => check_config(&file),
    }
}

fn import(what: Directory, file: &Path, config: Option<&Path>, database: &DatabaseArg) -> Result<(), String> {
    let settings = load_settings(config, database)?;
    let engine = settings.engine_config().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let url = settings.database.url.clone();
    runtime()?
        .block_on(async move {
            let store = vakt::live::store::Store::open(&url).await?;
            let now = vakt::live::clock::wall_clock().as_millis();
            let (n, what) = match what {
                Directory::Residents => {
                    let rows = vakt::live::directory::parse_residents(&text, &engine)?;
                    store.upsert_residents(&rows, now).await?;
                    // A regular helper who is not (yet) in the directory is only a
                    // preference that never applies: said, not refused (the staff may be
                    // imported next).
                    let staff: std::collections::BTreeSet<String> = store.staff_names().await?.into_iter().map(|n| n.staff_id).collect();
                    for r in &rows {
                        for h in r.regular_helpers.iter().filter(|h| !staff.contains(h.as_str())) {
                            eprintln!(
                                "note: resident {} names regular helper {h}, who is not in the staff directory: import them, or the preference never applies",
                                r.id
                            );
                        }
                    }
                    (rows.len(), "residents")
                }
                Directory::Staff => {
                    let rows = vakt::live::directory::parse_staff(&text, &engine)?;
                    store.upsert_staff(&rows, now).await?;
                    (rows.len(), "staff")
                }
                Directory::Devices => {
                    let rows = vakt::live::devices::register::parse_devices(&text)?;
                    // A device of a resident not in the directory would raise alarms that
                    // are refused: refused here instead, every such line named.
                    let residents = store.resident_ids().await?;
                    let unknown: Vec<String> = rows
                        .iter()
                        .filter(|d| !residents.contains(d.resident.as_str()))
                        .map(|d| format!("device {}: no resident {} in the directory (import the residents first)", d.id, d.resident))
                        .collect();
                    if !unknown.is_empty() {
                        anyhow::bail!("{} bad row(s), nothing imported:\n  {}", unknown.len(), unknown.join("\n  "));
                    }
                    store.upsert_devices(&rows, now).await?;
                    (rows.len(), "devices")
                }
            };
            println!("imported {n} {what} into {}; a running engine picks them up within 5 s", vakt::live::store::redact(&url));
            store.close().await;
            Ok::<(), anyhow::Error>(())
        })
        .map_err(|e| format!("{e:#}"))
}

fn check_config(file: &Path) -> Result<(), String> {
    let (_, c) = vakt::settings::load(Some(file)).map_err(|e| e.to_string())?;
    println!("{}: valid. Target {} s.", file.display(), c.target_answer.as_secs());
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

fn user_command(action: UserCommand, config: Option<&Path>, database: &DatabaseArg) -> Result<(), String> {
    let settings = load_settings(config, database)?;
    let url = settings.database.url.clone();
    match action {
        UserCommand::List => runtime()?.block_on(async move {
            let store = vakt::live::store::Store::open(&url).await?;
            for u in store.users().await? {
                let link = u.staff_id.map(|s| format!(" staff {s}")).or(u.centre.map(|c| format!(" centre {c}"))).unwrap_or_default();
                println!("{} {}{link}", u.username, u.role.as_str());
            }
            store.close().await;
            Ok::<(), anyhow::Error>(())
        }),
        UserCommand::Add { username, role, staff, centre, replace } => return add_user(&settings, config, username, role, staff, centre, replace),
        UserCommand::Remove { username } => runtime()?.block_on(async move {
            let store = vakt::live::store::Store::open(&url).await?;
            let removed = store.remove_user(&username).await?;
            store.close().await;
            anyhow::ensure!(removed, "no user {username:?}");
            println!("removed user {username}; their sessions have ended");
            Ok(())
        }),
    }
    .map_err(|e| format!("{e:#}"))
}

fn add_user(
    settings: &vakt::settings::Settings,
    config: Option<&Path>,
    username: String,
    role: RoleArg,
    staff: Option<String>,
    centre: Option<String>,
    replace: bool,
) -> Result<(), String> {
    use vakt::live::accounts::{Role, User};
    let role = match role {
        RoleArg::Operator => Role::Operator,
        RoleArg::Staff => Role::Staff,
        RoleArg::Planner => Role::Planner,
        RoleArg::Admin => Role::Admin,
    };
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
    let url = settings.database.url.clone();
    if let Some(id) = &user.staff_id {
        staff_exists(settings, config, &engine, &url, id.as_str())?;
    }
    let password = read_password(&user.username)?;
    let hash = vakt::live::accounts::hash_password(&password).map_err(|e| e.to_string())?;
    runtime()?
        .block_on(async move {
            let store = vakt::live::store::Store::open(&url).await?;
            let now = vakt::live::clock::wall_clock().as_millis();
            store.put_user(&user, &hash, now, replace).await?;
            println!("{} user {} ({}) in {}", if replace { "stored" } else { "added" }, user.username, user.role.as_str(), vakt::live::store::redact(&url));
            store.close().await;
            Ok::<(), anyhow::Error>(())
        })
        .map_err(|e| format!("{e:#}"))
}

/// A staff login names a staff member who exists: in the directory, or in the seed the
/// engine imports at its first start. A login tied to no one would see no offers, ever,
/// and say nothing.
fn staff_exists(settings: &vakt::settings::Settings, config: Option<&Path>, engine: &vakt::core::EngineConfig, url: &str, id: &str) -> Result<(), String> {
    if let Some(src) = &settings.seed.staff {
        let text = vakt::live::directory::read_source(src, config.and_then(Path::parent)).map_err(|e| format!("{e:#}"))?;
        let seeded = vakt::live::directory::parse_staff(&text, engine).map_err(|e| format!("seed staff {src}: {e:#}"))?;
        if seeded.iter().any(|(s, _)| s.id.as_str() == id) {
            return Ok(());
        }
    }
    let known = runtime()?.block_on(async {
        let store = vakt::live::store::Store::open(url).await?;
        let names = store.staff_names().await;
        store.close().await;
        anyhow::Ok(names?.into_iter().any(|n| n.staff_id == id))
    });
    match known.map_err(|e| format!("{e:#}"))? {
        true => Ok(()),
        false => Err(format!(
            "no staff member {id} in the directory of {}: import them first (vakt import staff FILE.csv, same --config), then add the user",
            vakt::live::store::redact(url)
        )),
    }
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

/// The configuration (the file, or the built-in one), with the database given on the
/// command line, if any.
fn load_settings(config: Option<&Path>, database: &DatabaseArg) -> Result<vakt::settings::Settings, String> {
    let (mut settings, _) = vakt::settings::load(config).map_err(|e| e.to_string())?;
    if let Some(url) = &database.database_url {
        settings.database.url = url.clone();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own check of the command line's definition (conflicting names, ...).
    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
