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
  vakt simulate --scenario FILE [--alarms HISTORY.csv] [--seed N] [--out DIR]
                                               replay a year of alarms through the response
                                               models (docs/simulation.md)
  vakt demo [--config FILE]                    play a scripted demo morning through the core engine
  vakt check-config FILE                       validate a configuration file and summarise it
  vakt help                                    this text

Without --config, the built-in config/default.toml is used: an embedded MQTT broker on
127.0.0.1:1883, an SQLite file vakt.sqlite in the current directory, HTTP on 127.0.0.1:8080.
Logs: RUST_LOG (default info).";

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
            let settings = load_settings(config.as_deref())?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            let url = settings.database.url.clone();
            runtime()?.block_on(async move {
                let store = vakt::live::store::Store::open(&url).await?;
                let now = vakt::live::driver::wall_clock().as_millis();
                let n = match what.as_str() {
                    "residents" => {
                        let rows = vakt::live::directory::parse_residents(&text)?;
                        store.upsert_residents(&rows, now).await?;
                        rows.len()
                    }
                    "staff" => {
                        let rows = vakt::live::directory::parse_staff(&text)?;
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn"));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}
