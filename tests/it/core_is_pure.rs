//! The core's promise, enforced: no I/O, no clock, no ambient randomness in src/core.
//! Comments may talk about these things; code may not name them.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "sqlx",
    "rumqttc",
    "rumqttd",
    "axum",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "std::env",
    // std's HashMap seeds its hasher randomly per process: iteration order would differ run to run.
    "std::collections::HashMap",
    "std::collections::HashSet",
    "RandomState",
    "println!",
    "eprintln!",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of code with `//` comments removed (good enough: no forbidden name is in a string).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

#[test]
fn core_names_no_io_clock_or_randomness() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() >= 10, "found the core's files: {files:?}");
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            for word in FORBIDDEN {
                if line.contains(word) {
                    hits.push(format!("{}:{n}: {word}: {}", f.display(), line.trim()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "src/core must stay pure:\n{}", hits.join("\n"));
}

#[test]
fn the_purity_check_sees_code_and_not_comments() {
    let sample = "let t = Instant::now(); // fine to mention tokio here\n// SystemTime::now in a comment\n";
    let flagged: Vec<_> = code_lines(sample).filter(|(_, l)| FORBIDDEN.iter().any(|w| l.contains(w))).collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].0, 1);
}

/// The layers point one way: the live engine uses the configuration, the core and the
/// simulator's neighbours; the configuration, the simulator and the demo never name the
/// live engine (the simulator depended on it through `settings` once).
#[test]
fn settings_the_simulator_and_the_demo_do_not_name_the_live_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("settings.rs"), root.join("demo.rs")];
    rust_files(&root.join("sim"), &mut files);
    rust_files(&root.join("core"), &mut files);
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            if line.contains("live::") {
                hits.push(format!("{}:{n}: {}", f.display(), line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "a layer below the live engine names it:\n{}", hits.join("\n"));
}
