//! ARCHITECTURE.md held to the tree: every path its code map names exists, every folder under
//! `src/` is named in it, the import rules it states as Architecture Invariants hold, and no
//! source file is too long to read before its tests.
//!
//! The rules are checked on the source text with comments left out (a doc link to another module
//! is not a use of it). A module is used when its path is written: `crate::x`, `crate::{x, ..}`,
//! or a `super::` chain that climbs to the crate root.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Longest a source file may be before its `#[cfg(test)]` module.
const MAX_LINES_BEFORE_TESTS: usize = 700;

/// The files that make up the edge: the command line, start-up, and the two front ends.
const EDGE: [&str; 7] = [
    "src/main.rs",
    "src/lib.rs",
    "src/cli.rs",
    "src/runtime.rs",
    "src/tui.rs",
    "src/headless.rs",
    "src/backtest.rs",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root")
}

/// Every `.rs` file under `dir` (relative to the root), as sorted root-relative paths.
fn rust_files(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut found = Vec::new();
    walk(&root.join(dir), &mut found);
    let mut files: Vec<String> = found
        .iter()
        .filter_map(|p| p.strip_prefix(&root).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    files.sort();
    files
}

/// Every folder under `src/`, at any depth, as `src/name/`.
fn source_folders() -> Vec<String> {
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for file in rust_files("src") {
        let mut parts: Vec<&str> = file.split('/').collect();
        parts.pop();
        for depth in 2..=parts.len() {
            folders.insert(format!("{}/", parts[..depth].join("/")));
        }
    }
    folders.into_iter().collect()
}

/// The top-level modules of the crate: `src/x.rs` and `src/x/` both give `x`.
fn crate_modules() -> BTreeSet<String> {
    rust_files("src")
        .iter()
        .filter_map(|f| f.strip_prefix("src/"))
        .map(|f| {
            f.split('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".rs")
                .to_owned()
        })
        .filter(|m| m != "lib" && m != "main")
        .collect()
}

/// A source file's lines with comment lines (`//`, `///`, `//!`) left out, numbered from 1.
fn code_lines(file: &str) -> Vec<(usize, String)> {
    let text = fs::read_to_string(root().join(file)).unwrap_or_default();
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_at(text: &str) -> &str {
    let end = text.find(|c: char| !is_ident(c)).unwrap_or(text.len());
    &text[..end]
}

/// The first identifier of each item of the `{..}` group that `text` starts with.
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => {
                depth += 1;
                at_item = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_item = true,
            c if at_item && depth == 1 && is_ident(c) => {
                heads.push(ident_at(&text[i..]).to_owned());
                at_item = false;
            }
            _ => {}
        }
    }
    heads
}

/// How many modules deep `file` is: `src/lib.rs` 0, `src/app.rs` and `src/ui/mod.rs` 1,
/// `src/ui/side.rs` 2.
fn module_depth(file: &str) -> usize {
    let parts: Vec<&str> = file.split('/').skip(1).collect();
    match parts.last() {
        Some(&"lib.rs" | &"main.rs") if parts.len() == 1 => 0,
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

/// The crate's top-level modules `file` uses, each with the first line that uses it.
fn modules_used(file: &str) -> Vec<(String, usize)> {
    let known = crate_modules();
    let depth = module_depth(file);
    let mut used: Vec<(String, usize)> = Vec::new();
    let mut note = |module: &str, line: usize| {
        if known.contains(module) && !used.iter().any(|(m, _)| m == module) {
            used.push((module.to_owned(), line));
        }
    };
    let mut in_tests = false;
    let mut after_cfg_test = false;
    for (number, line) in code_lines(file) {
        let item = line.trim_start();
        if after_cfg_test && (item.starts_with("mod ") || item.starts_with("pub mod ")) {
            in_tests = true;
        }
        if !item.is_empty() && !item.starts_with("#[") {
            after_cfg_test = false;
        }
        if item.starts_with("#[cfg(test)]") {
            after_cfg_test = true;
        }
        for prefix in ["crate::", "salary_stream::"] {
            for (at, _) in line.match_indices(prefix) {
                if line[..at].ends_with(|c: char| is_ident(c) || c == '$') {
                    continue;
                }
                let rest = &line[at + prefix.len()..];
                if rest.starts_with('{') {
                    for head in group_heads(rest) {
                        note(&head, number);
                    }
                } else {
                    note(ident_at(rest), number);
                }
            }
        }
        // A `super::` chain reaches the crate root after `depth` steps (one more inside a test
        // module).
        let root_steps = depth + usize::from(in_tests);
        for (at, _) in line.match_indices("super::") {
            if line[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                continue;
            }
            let mut rest = &line[at..];
            let mut steps = 0;
            while let Some(after) = rest.strip_prefix("super::") {
                steps += 1;
                rest = after;
            }
            if steps == root_steps {
                note(ident_at(rest), number);
            }
        }
    }
    used
}

/// `code_lines` before the file's `#[cfg(test)]` module: the code itself, whose unit tests may
/// build an `App` by hand or write a file.
fn code_lines_before_tests(file: &str) -> Vec<(usize, String)> {
    let end = lines_before_tests(file);
    code_lines(file)
        .into_iter()
        .filter(|(number, _)| *number <= end)
        .collect()
}

/// Whether `file`, before its tests, names the crate or module `name` as a path: `name::`,
/// `use name;`, `name as ..`, with no identifier character before it (`librdkafka` is not
/// `rdkafka`).
fn names_path(file: &str, name: &str) -> Option<usize> {
    code_lines_before_tests(file)
        .into_iter()
        .find_map(|(number, line)| {
            line.match_indices(name)
                .any(|(at, _)| {
                    let before_ok = !line[..at].ends_with(is_ident);
                    let after = &line[at + name.len()..];
                    let after_ok = after.starts_with("::")
                        || after.starts_with(" as ")
                        || after.starts_with(';')
                        || after.starts_with('!');
                    before_ok && after_ok
                })
                .then_some(number)
        })
}

/// `file:line uses crate::module` for each module `file` uses outside `allowed`.
fn uses_outside(files: &[String], allowed: &[&str]) -> Vec<String> {
    files
        .iter()
        .flat_map(|file| {
            modules_used(file)
                .into_iter()
                .filter(|(m, _)| !allowed.contains(&m.as_str()))
                .map(move |(m, line)| format!("{file}:{line} uses crate::{m}"))
        })
        .collect()
}

/// `file:line names name` for each of `names` a file names as a path.
fn naming(files: &[String], names: &[&str]) -> Vec<String> {
    files
        .iter()
        .flat_map(|file| {
            names.iter().filter_map(move |name| {
                names_path(file, name).map(|line| format!("{file}:{line} names {name}"))
            })
        })
        .collect()
}

fn files_of(paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| {
            if p.ends_with(".rs") {
                vec![(*p).to_owned()]
            } else {
                rust_files(p)
            }
        })
        .collect()
}

/// The spans in backticks of `text`, outside fenced blocks, each with the base folder of the
/// section it is in (the first folder its heading names, else `src/`).
fn backticked(text: &str) -> Vec<(String, String)> {
    let mut spans = Vec::new();
    let mut fenced = false;
    let mut base = "src/".to_owned();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let in_line: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        if line.starts_with('#') {
            base = in_line
                .iter()
                .find(|s| s.ends_with('/'))
                .map_or_else(|| "src/".to_owned(), |s| (*s).to_owned());
        }
        for span in in_line {
            spans.push((span.to_owned(), base.clone()));
        }
    }
    spans
}

/// The root-relative path a span names, if it names one: `src/kafka/`, `tests/x.rs`, or a bare
/// `name.rs` within the section's folder, or a bare `NAME.md` at the root.
fn named_path(span: &str, base: &str) -> Option<String> {
    let path_like = !span.is_empty()
        && span
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !path_like {
        return None;
    }
    if span.contains('/') {
        Some(span.to_owned())
    } else if span.ends_with(".rs") {
        Some(format!("{base}{span}"))
    } else if span.ends_with(".md") {
        Some(span.to_owned())
    } else {
        None
    }
}

#[test]
fn every_path_architecture_md_names_exists() {
    let text = architecture();
    let named: BTreeSet<String> = backticked(&text)
        .iter()
        .filter_map(|(span, base)| named_path(span, base))
        .collect();
    assert!(
        named.contains("src/kafka/") && named.contains("src/app.rs"),
        "the code map names its folders and files in backticks: {named:?}"
    );
    let missing: Vec<&String> = named.iter().filter(|p| !root().join(p).exists()).collect();
    assert_eq!(
        missing,
        Vec::<&String>::new(),
        "ARCHITECTURE.md names paths that do not exist"
    );
}

#[test]
fn every_folder_and_top_level_file_under_src_is_named_in_architecture_md() {
    let text = architecture();
    let named: BTreeSet<String> = backticked(&text).into_iter().map(|(s, _)| s).collect();
    let top_level_files = rust_files("src")
        .into_iter()
        .filter(|f| f.matches('/').count() == 1);
    let unnamed: Vec<String> = source_folders()
        .into_iter()
        .chain(top_level_files)
        .filter(|p| !named.contains(p))
        .collect();
    assert_eq!(
        unnamed,
        Vec::<String>::new(),
        "ARCHITECTURE.md's code map leaves these out"
    );
}

#[test]
fn kafka_uses_only_the_engine_vocabulary_and_rdkafka() {
    let offenders = uses_outside(&rust_files("src/kafka"), &["kafka", "engine"]);
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn only_kafka_calls_the_librdkafka_c_api() {
    let outside: Vec<String> = rust_files("src")
        .into_iter()
        .filter(|f| !f.starts_with("src/kafka/"))
        .collect();
    let offenders = naming(&outside, &["rdkafka_sys", "rdsys"]);
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn formats_and_model_use_nothing_else_of_the_crate_and_no_kafka_or_network() {
    let mut offenders = uses_outside(&rust_files("src/formats"), &["formats"]);
    offenders.extend(uses_outside(&rust_files("src/model"), &["model"]));
    let pure = files_of(&["src/formats", "src/model"]);
    offenders.extend(naming(&pure, &["rdkafka", "tokio", "hyper", "std::net"]));
    // The registry's HTTP client is the one file here that talks to the network.
    let not_the_client: Vec<String> = rust_files("src/formats")
        .into_iter()
        .filter(|f| f != "src/formats/registry_client.rs")
        .collect();
    offenders.extend(naming(&not_the_client, &["ureq", "native_tls"]));
    offenders.extend(naming(&rust_files("src/formats"), &["std::fs", "std::io"]));
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn observe_uses_nothing_of_serving_and_only_watch_uses_kafka() {
    let mut offenders = uses_outside(&rust_files("src/observe"), &["observe", "engine", "kafka"]);
    let not_watch: Vec<String> = rust_files("src/observe")
        .into_iter()
        .filter(|f| f != "src/observe/watch.rs")
        .collect();
    offenders.extend(
        uses_outside(&not_watch, &["observe", "engine"])
            .into_iter()
            .filter(|o| o.ends_with("crate::kafka")),
    );
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn serving_uses_nothing_of_the_view_or_the_edge() {
    let serving = rust_files("src/serving");
    let mut offenders = uses_outside(
        &serving,
        &["serving", "kafka", "formats", "model", "observe", "engine"],
    );
    offenders.extend(naming(&serving, &["ratatui", "crossterm"]));
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn the_engine_vocabulary_uses_no_engine_folder_but_observe() {
    let offenders = uses_outside(&files_of(&["src/engine.rs"]), &["engine", "observe"]);
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn the_view_uses_nothing_of_kafka_serving_model_or_formats() {
    let ui = rust_files("src/ui");
    let mut offenders = uses_outside(&ui, &["ui", "app", "engine", "observe"]);
    offenders.extend(naming(
        &ui,
        &["rdkafka", "tokio", "std::fs", "std::net", "std::thread"],
    ));
    let mutating: Vec<String> = ui
        .iter()
        .flat_map(|file| {
            code_lines_before_tests(file)
                .into_iter()
                .filter(|(_, line)| line.contains("&mut App"))
                .map(move |(n, _)| format!("{file}:{n} takes &mut App"))
        })
        .collect();
    offenders.extend(mutating);
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn app_does_no_io_and_takes_only_commands_from_serving() {
    let app = files_of(&["src/app.rs"]);
    let mut offenders = uses_outside(&app, &["app", "engine", "observe", "serving"]);
    offenders.extend(naming(
        &app,
        &[
            "rdkafka",
            "ratatui",
            "crossterm",
            "tokio",
            "std::fs",
            "std::net",
            "std::thread",
        ],
    ));
    let allowed = [
        "crate::serving::producer::ProducerCommand",
        "crate::serving::slots::ModelCommand",
    ];
    for (n, line) in code_lines("src/app.rs") {
        for (at, _) in line.match_indices("crate::serving") {
            let path: String = line[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            if !allowed.contains(&path.as_str()) {
                offenders.push(format!("src/app.rs:{n} uses {path}"));
            }
        }
    }
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn app_update_is_the_only_public_way_to_change_app() {
    let lines = code_lines("src/app.rs");
    let mut offenders = Vec::new();
    let mut block: Option<&str> = None;
    for (n, line) in &lines {
        if line.starts_with("pub struct App {") {
            block = Some("struct");
        } else if line.starts_with("impl App {") {
            block = Some("impl");
        } else if line.starts_with('}') {
            block = None;
        } else if block == Some("struct") && line.trim_start().starts_with("pub") {
            offenders.push(format!("src/app.rs:{n} public field: {}", line.trim()));
        } else if block == Some("impl")
            && line.trim_start().starts_with("pub fn")
            && line.contains("&mut self")
            && !line.trim_start().starts_with("pub fn update(")
        {
            offenders.push(format!("src/app.rs:{n} mutates: {}", line.trim()));
        }
    }
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.trim_start().starts_with("pub fn update(&mut self")),
        "App::update(&mut self, ..) is where state changes"
    );
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn only_the_view_and_the_dashboard_runtime_name_ratatui_or_crossterm() {
    let outside: Vec<String> = rust_files("src")
        .into_iter()
        .filter(|f| !f.starts_with("src/ui/") && f != "src/tui.rs")
        .collect();
    let offenders = naming(&outside, &["ratatui", "crossterm"]);
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn the_headless_side_never_touches_the_view() {
    let headless = files_of(&[
        "src/headless.rs",
        "src/runtime.rs",
        "src/backtest.rs",
        "src/cli.rs",
    ]);
    let mut offenders: Vec<String> = uses_outside(&headless, &[])
        .into_iter()
        .filter(|o| {
            ["crate::app", "crate::ui", "crate::tui"]
                .iter()
                .any(|v| o.ends_with(v))
        })
        .collect();
    offenders.extend(naming(&headless, &["ratatui", "crossterm"]));
    assert_eq!(offenders, Vec::<String>::new());
}

#[test]
fn only_the_edge_uses_anyhow() {
    let inside: Vec<String> = rust_files("src")
        .into_iter()
        .filter(|f| !EDGE.contains(&f.as_str()))
        .collect();
    let offenders = naming(&inside, &["anyhow"]);
    assert_eq!(offenders, Vec::<String>::new());
}

/// Lines before the file's `#[cfg(test)]` module (the whole file when it has none).
fn lines_before_tests(file: &str) -> usize {
    let text = fs::read_to_string(root().join(file)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let test_module = lines.iter().enumerate().position(|(i, line)| {
        line.trim_start().starts_with("#[cfg(test)]")
            && lines[i + 1..]
                .iter()
                .map(|l| l.trim_start())
                .find(|l| !l.is_empty() && !l.starts_with("#[") && !l.starts_with("//"))
                .is_some_and(|item| {
                    ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
                        .iter()
                        .any(|p| item.starts_with(p))
                })
    });
    test_module.unwrap_or(lines.len())
}

#[test]
fn no_source_file_is_over_700_lines_before_its_tests() {
    let files = files_of(&["src", "benches"]);
    assert!(files.len() > 10, "found the sources: {files:?}");
    let offenders: Vec<String> = files
        .iter()
        .map(|f| (f, lines_before_tests(f)))
        .filter(|(_, n)| *n > MAX_LINES_BEFORE_TESTS)
        .map(|(f, n)| format!("{f}: {n} lines before its tests"))
        .collect();
    assert_eq!(offenders, Vec::<String>::new());
}

/// The scanner itself: it finds what it is meant to, so that a rule never passes by finding
/// nothing.
#[test]
fn the_scanner_finds_the_uses_the_tree_is_known_to_have() {
    let serving: BTreeSet<String> = modules_used("src/serving/scoring.rs")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(
        serving,
        ["formats", "kafka", "model"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let ui: BTreeSet<String> = modules_used("src/ui/side.rs")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert!(ui.contains("app") && ui.contains("observe"), "{ui:?}");
    assert!(names_path("src/tui.rs", "crossterm").is_some());
    assert!(names_path("src/kafka/delivery.rs", "rdkafka_sys").is_some());
    assert_eq!(
        group_heads("{kafka::config, serving::{a, b}, ui}"),
        ["kafka", "serving", "ui"]
    );
    assert_eq!(module_depth("src/lib.rs"), 0);
    assert_eq!(module_depth("src/ui/mod.rs"), 1);
    assert_eq!(module_depth("src/ui/side.rs"), 2);
    assert!(
        lines_before_tests("src/formats/json.rs")
            < fs::read_to_string(root().join("src/formats/json.rs"))
                .unwrap_or_default()
                .lines()
                .count()
    );
}
