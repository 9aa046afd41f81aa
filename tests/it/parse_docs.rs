//! docs/language.md stays true: its `mco` examples parse, and its grammar appendix is a verbatim
//! copy of grammar/mcopt.pest.

use std::fs;
use std::path::Path;

use mcopt::diag::{render_plain, SourceFile};
use mcopt::syntax::parse;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bodies of the fenced blocks opened with "```" followed by `tag` (indented fences too).
fn blocks(doc: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut current {
            None if trimmed == format!("```{tag}") => current = Some((String::new(), indent)),
            None => {}
            Some((body, _)) if trimmed == "```" => {
                out.push(std::mem::take(body));
                current = None;
            }
            Some((body, indent)) => {
                body.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
        }
    }
    out
}

#[test]
fn examples_in_the_language_reference_parse() {
    let doc = read("docs/language.md");
    let examples = blocks(&doc, "mco");
    assert!(
        examples.len() >= 11,
        "found only {} examples",
        examples.len()
    );
    for (i, text) in examples.iter().enumerate() {
        let source = SourceFile::new(format!("example {}", i + 1), text.as_str());
        if let Err(d) = parse(&source) {
            panic!(
                "example {} does not parse:\n{text}\n{}",
                i + 1,
                render_plain(&d)
            );
        }
    }
}

#[test]
fn grammar_appendix_is_verbatim() {
    let doc = read("docs/language.md");
    let grammar = read("grammar/mcopt.pest");
    let appendix = blocks(&doc, "pest");
    assert_eq!(appendix.len(), 1, "one pest block expected");
    assert!(
        appendix[0] == grammar,
        "docs/language.md's grammar differs from grammar/mcopt.pest"
    );
}
