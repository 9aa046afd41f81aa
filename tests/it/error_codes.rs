//! Diagnostic codes live in one registry (issue 16 item 6): every `"mcopt::…"` code literal in
//! `src/` and `plugins/` is registered in `mcopt::diag::codes`, every registered code is used,
//! and `docs/errors.md` lists each code with the registry's meaning.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mcopt::diag::codes::CODES;

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The codes written in `text`: `mcopt::` right after a `"` (a literal) or a `[` (the
/// `error[CODE]` the binary prints itself), up to the end of the code's characters. A path such
/// as `mcopt::diag::Diag` is not preceded by either and is not a code.
fn codes_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("mcopt::") {
        let before = text[..at].chars().next_back();
        if !matches!(before, Some('"') | Some('[')) {
            continue;
        }
        let code: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':')
            .collect();
        let code = code.trim_end_matches(':');
        if code.len() > "mcopt".len() {
            found.insert(code.to_string());
        }
    }
    found
}

/// The codes used by the program: `src/`, `plugins/` and `python/`, without the registry itself.
fn used_codes() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    rust_files(Path::new("plugins"), &mut files);
    rust_files(Path::new("python"), &mut files);
    files
        .iter()
        .filter(|p| !p.ends_with("diag/codes.rs"))
        .flat_map(|p| codes_in(&std::fs::read_to_string(p).unwrap_or_default()))
        .collect()
}

#[test]
fn the_scanner_finds_literals_and_skips_paths() {
    let text = r#"use mcopt::diag::Diag; s.starts_with("mcopt::"); Diag::new("mcopt::parse::syntax", m); "error[mcopt::internal]: x""#;
    let found: Vec<String> = codes_in(text).into_iter().collect();
    assert_eq!(found, ["mcopt::internal", "mcopt::parse::syntax"]);
}

#[test]
fn every_code_used_is_registered() {
    let used = used_codes();
    assert!(used.len() > 100, "the scan found too few codes: {used:?}");
    let registered: BTreeSet<&str> = CODES.iter().map(|(c, _)| *c).collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|c| !registered.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "codes used but not in mcopt::diag::codes: {missing:?}"
    );
}

#[test]
fn every_registered_code_is_used_once_listed() {
    let used = used_codes();
    let unused: Vec<&str> = CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !used.contains(*c))
        .collect();
    assert!(unused.is_empty(), "registered but never used: {unused:?}");
    let mut seen = BTreeSet::new();
    for (c, meaning) in CODES {
        assert!(seen.insert(*c), "{c} is registered twice");
        assert!(
            !meaning.is_empty() && !meaning.contains('\n'),
            "{c}: one line"
        );
    }
}

#[test]
fn docs_errors_lists_every_code_with_its_meaning() {
    let doc = std::fs::read_to_string("docs/errors.md").expect("docs/errors.md");
    for (c, meaning) in CODES {
        let row = format!("| `{c}` | {meaning} |");
        assert!(doc.contains(&row), "docs/errors.md lacks the row {row}");
    }
    let listed = doc.lines().filter(|l| l.starts_with("| `mcopt::")).count();
    assert_eq!(
        listed,
        CODES.len(),
        "docs/errors.md lists codes the registry does not have"
    );
}
