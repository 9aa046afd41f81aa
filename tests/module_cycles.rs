//! The modules depend one way (issue 7 item 24): the top-level modules of the library
//! (`registry` once imported `plugin_host` and the other way round), and within
//! `src/syntax` (`errors` once imported from `parse`, which imports `errors`). Doc comments
//! and comments are ignored.

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

/// Code lines of a file (comment lines dropped).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
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

/// For each top-level module of the library (`src/NAME.rs` or `src/NAME/`), the other
/// top-level modules it names as `crate::NAME`.
fn crate_uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new("src");
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("src: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            let keep = (p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
                && !["lib", "main", "cli"].contains(&name.as_str());
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
            let code: String = rust_files(&path).iter().map(|p| code_of(p)).collect();
            let uses = modules
                .iter()
                .filter(|o| *o != m && code.contains(&format!("crate::{o}")))
                .cloned()
                .collect();
            (m.clone(), uses)
        })
        .collect()
}

#[test]
fn the_top_level_modules_depend_one_way() {
    let g = crate_uses();
    assert!(
        g.contains_key("registry") && g.contains_key("plugin_host"),
        "{g:?}"
    );
    assert_eq!(find_cycle(&g), None, "{g:?}");
}

#[test]
fn the_syntax_modules_depend_one_way() {
    let g = sibling_uses(Path::new("src/syntax"));
    assert!(g.contains_key("parse") && g.contains_key("errors"), "{g:?}");
    assert!(g["parse"].contains("errors"), "parse uses errors: {g:?}");
    assert_eq!(find_cycle(&g), None, "{g:?}");
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
