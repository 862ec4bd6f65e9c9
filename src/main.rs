//! The `vakt` command line. Thin: parse arguments, load configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
vakt: welfare-technology alarm response engine

Usage:
  vakt [demo] [--config FILE]     play a demo morning through the core engine (default)
  vakt check-config FILE          validate a configuration file and summarise it
  vakt help                       this text

Without --config, the built-in config/default.toml is used.";

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
        None => ("demo", args),
        Some(c) if c.starts_with("--") => ("demo", args),
        Some(c) => (c, &args[1..]),
    };
    match command {
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
