//! Layering you can test (issue 16 item 5): which top-level module of the library may import
//! which is a whitelist, [`ALLOWED`], the table of the diagram in ARCHITECTURE.md ("Layers"). A
//! module imports another when its code (comments dropped) names `crate::OTHER` (`mcopt::OTHER`
//! in the binary's `src/cli`). Within every source directory of the library and of the std
//! plugin, the files depend one way (`super::NAME`), except the file cycles that open issue
//! items remove ([`KNOWN_FILE_CYCLES`]). `the_whitelist_catches_a_forbidden_import` runs the
//! checker on a synthetic source tree that adds a forbidden import and sees it fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// For each submodule file of `dir`, the sibling submodules it names as `super::NAME`.
fn sibling_uses(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs"))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (name, text)
        })
        .collect();
    let names: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    files
        .iter()
        .map(|(name, text)| {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let uses = names
                .iter()
                .filter(|other| *other != name)
                .filter(|other| {
                    code.contains(&format!("super::{other}::"))
                        || code.contains(&format!("super::{other}}}"))
                        || code.contains(&format!("super::{{{other}"))
                        || code.contains(&format!("super::{other};"))
                })
                .cloned()
                .collect();
            (name.clone(), uses)
        })
        .collect()
}

/// A cycle in the graph, if any, as the list of modules along it.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        u: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(u.to_string(), 1);
        stack.push(u.to_string());
        for v in g.get(u).into_iter().flatten() {
            match state.get(v.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == v).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(v.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(g, v, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(u.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for u in g.keys() {
        if !state.contains_key(u) {
            if let Some(c) = visit(g, u, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Code lines of a file: comment lines dropped, and the unit tests (from the first
/// `#[cfg(test)]` on), which may build their fixtures with any stage.
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `.rs` file under `path` (or `path` itself).
fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The foundation: modules every stage may import. Their own imports are listed in [`ALLOWED`].
const FOUNDATION: &[&str] = &[
    "text", "vars", "memory", "rng", "signals", "diag", "input", "atomic",
];

/// Which top-level module may import which, from the top layer down (ARCHITECTURE.md, "Layers").
/// A stage may also import every [`FOUNDATION`] module (but a foundation module only what its
/// row says).
const ALLOWED: &[(&str, &[&str])] = &[
    // The binary: argument parsing, printing, exit codes, signals, progress bars.
    ("cli", &["*"]),
    // The composition root: every stage below.
    ("session", &["*"]),
    ("sweep", &["config"]),
    ("report", &["forms", "graph", "solve", "stationarity"]),
    ("solve", &["eval", "graph", "registry"]),
    ("stationarity", &["eval", "forms", "graph", "registry"]),
    ("forms", &["eval", "graph", "registry"]),
    ("eval", &["graph", "registry"]),
    ("graph", &["check", "registry"]),
    ("check", &["registry", "syntax"]),
    ("plugin_host", &["registry"]),
    ("registry", &[]),
    ("syntax", &[]),
    ("config", &[]),
    // The foundation.
    ("atomic", &["diag", "input"]),
    ("input", &["diag"]),
    ("diag", &["text"]),
    ("text", &[]),
    ("vars", &[]),
    ("memory", &[]),
    ("rng", &[]),
    ("signals", &[]),
];

/// Imports against the layers that an open issue item removes; the lead drops each row once
/// that item is merged.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "solve",
        "check",
        "issue 16 item 4: data as evaluator input (branch speed)",
    ),
    (
        "solve",
        "config",
        "issue 16 item 4: data as evaluator input (branch speed)",
    ),
];

/// File cycles an open issue item removes: (directory, file, file, the item).
const KNOWN_FILE_CYCLES: &[(&str, &str, &str, &str)] = &[];

/// For each top-level module under `src` (`NAME.rs` or `NAME/`, with the binary's `cli`), the
/// other top-level modules it names.
fn crate_uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            let keep = (p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
                && !["lib", "main"].contains(&name.as_str());
            keep.then_some(name)
        })
        .collect();
    modules
        .iter()
        .map(|m| {
            let dir = src.join(m);
            let path = if dir.is_dir() {
                dir
            } else {
                src.join(format!("{m}.rs"))
            };
            let root = if m == "cli" { "mcopt" } else { "crate" };
            let code: String = rust_files(&path).iter().map(|p| code_of(p)).collect();
            let uses = modules
                .iter()
                .filter(|o| *o != m && names_module(&code, root, o))
                .cloned()
                .collect();
            (m.clone(), uses)
        })
        .collect()
}

/// Whether `code` names `ROOT::module` as a whole path segment.
fn names_module(code: &str, root: &str, module: &str) -> bool {
    let needle = format!("{root}::{module}");
    code.match_indices(&needle).any(|(at, _)| {
        let next = code[at + needle.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The imports under `src` that the whitelist does not allow, as `from → to`; a module missing
/// from the table is a violation of its own.
fn violations(src: &Path) -> Vec<String> {
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut out = Vec::new();
    for (m, uses) in crate_uses(src) {
        let Some(allowed) = table.get(m.as_str()) else {
            out.push(format!("{m} is not in the whitelist"));
            continue;
        };
        let stage = !FOUNDATION.contains(&m.as_str());
        for u in uses {
            let ok = allowed.contains(&"*")
                || allowed.contains(&u.as_str())
                || (stage && FOUNDATION.contains(&u.as_str()))
                || KNOWN_EXCEPTIONS.iter().any(|(f, t, _)| *f == m && *t == u);
            if !ok {
                out.push(format!("{m} → {u}"));
            }
        }
    }
    out
}

/// Every directory under `root` that holds Rust files.
fn dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(dirs(&e.path()));
        }
    }
    out
}

/// A file cycle in any directory under `roots`, the known ones left out.
fn file_cycles(roots: &[&Path]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for dir in roots.iter().flat_map(|r| dirs(r)) {
        let mut g = sibling_uses(&dir);
        let shown = dir.to_string_lossy().replace('\\', "/");
        for (d, a, b, _) in KNOWN_FILE_CYCLES {
            if shown == *d {
                if let Some(s) = g.get_mut(*b) {
                    s.remove(*a);
                }
            }
        }
        if let Some(c) = find_cycle(&g) {
            out.push((shown, c));
        }
    }
    out
}

#[test]
fn the_top_level_modules_follow_the_whitelist() {
    let g = crate_uses(Path::new("src"));
    for m in ["session", "sweep", "forms", "stationarity", "solve", "cli"] {
        assert!(g.contains_key(m), "{m} not found: {g:?}");
    }
    assert_eq!(violations(Path::new("src")), Vec::<String>::new(), "{g:?}");
    let mut lib = g.clone();
    lib.remove("cli");
    assert_eq!(find_cycle(&lib), None, "{g:?}");
}

#[test]
fn the_whitelist_names_every_module_once() {
    let g = crate_uses(Path::new("src"));
    let listed: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    assert_eq!(listed.len(), ALLOWED.len(), "a module listed twice");
    let found: BTreeSet<&str> = g.keys().map(String::as_str).collect();
    assert_eq!(
        listed, found,
        "the whitelist and src/ name different modules"
    );
    let doc = std::fs::read_to_string("ARCHITECTURE.md").unwrap();
    for m in listed {
        assert!(
            doc.contains(&format!("`{m}`")),
            "ARCHITECTURE.md does not name `{m}`"
        );
    }
}

#[test]
fn the_files_of_each_directory_depend_one_way() {
    let g = sibling_uses(Path::new("src/syntax"));
    assert!(g["parse"].contains("errors"), "parse uses errors: {g:?}");
    let found = file_cycles(&[Path::new("src"), Path::new("plugins/std/src")]);
    assert!(found.is_empty(), "file cycles: {found:?}");
}

#[test]
fn the_whitelist_catches_a_forbidden_import() {
    let root = std::env::temp_dir().join(format!("mcopt-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let src = root.join("src");
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod check;\npub mod config;\npub mod text;\n");
    write("text.rs", "pub fn f() {}\n");
    write("diag.rs", "");
    write("config/mod.rs", "use crate::text::f;\n");
    write(
        "check/mod.rs",
        "// crate::config in a comment is no import\nuse crate::text::f;\n",
    );
    assert_eq!(violations(&src), Vec::<String>::new());
    write("check/mod.rs", "use crate::config::suggest;\n");
    write("vars.rs", "use crate::diag::Diag;\n");
    let found = violations(&src);
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(found, ["check → config", "vars → diag"]);
}

#[test]
fn the_srpa_modules_depend_one_way() {
    let g = sibling_uses(Path::new("plugins/std/src/solvers/srpa"));
    assert!(g.contains_key("schur") && g.contains_key("sparse"), "{g:?}");
    assert!(g["schur"].contains("sparse"), "schur uses sparse: {g:?}");
    assert!(!g["schur"].contains("subproblem"), "{g:?}");
    assert_eq!(find_cycle(&g), None, "{g:?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
