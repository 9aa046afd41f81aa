//! Property tests: the parser never panics and never overflows the stack, on random text, on
//! mutated models and on hostile nesting, all run in threads with a 2 MiB stack.
//!
//! Case counts default to proptest's (256) and follow `PROPTEST_CASES`.

use crate::common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use mcopt::diag::{Diags, SourceFile};
use mcopt::syntax::parse;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

const SMALL_STACK: usize = 2 << 20;

/// Run `f` in a thread with a 2 MiB stack; a panic or a failed property fails the test.
fn small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawn a test thread");
    if let Err(e) = handle.join() {
        std::panic::resume_unwind(e);
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/parse_fuzz.proptest-regressions",
        ))),
        ..Config::default()
    })
}

/// Parse, and check what can be checked of any outcome: spans inside the text, on character
/// boundaries, messages non-empty.
fn parse_checked(text: &str) -> Result<(), TestCaseError> {
    let source = SourceFile::new("fuzz.mco", text);
    match parse(&source) {
        Ok(program) => {
            for item in &program.items {
                let span = common::sexp::item_span(item);
                prop_assert!(in_text(&source, span.start, span.end), "item span {span:?}");
            }
        }
        Err(diags) => check_diags(&source, &diags)?,
    }
    Ok(())
}

fn check_diags(source: &Arc<SourceFile>, diags: &Diags) -> Result<(), TestCaseError> {
    prop_assert!(!diags.is_empty());
    for d in diags.iter() {
        prop_assert!(!d.message.is_empty());
        prop_assert!(d.code.starts_with("mcopt::parse::"), "code {}", d.code);
        for (span, _) in &d.labels {
            prop_assert!(
                in_text(source, span.start, span.end),
                "label span {span:?} in {:?}",
                d.message
            );
        }
    }
    Ok(())
}

fn in_text(source: &SourceFile, start: usize, end: usize) -> bool {
    let t = &source.text;
    start <= end && end <= t.len() && t.is_char_boundary(start) && t.is_char_boundary(end)
}

/// The `ok` corpus, as the seeds of mutation.
fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parse/ok");
    common::golden::inputs(&dir, "mco")
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect()
}

/// Tokens that mutations insert.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    ":",
    "+",
    "-",
    "*",
    ".*",
    "/",
    "^",
    "#",
    "\n",
    " ",
    "x",
    "t",
    "0",
    "1",
    "2.5",
    "1e-3",
    "1e999",
    "99999999999999999999999",
    "param",
    "let",
    "layer",
    "minimize",
    "data",
    "const",
    "vec(3)",
    "mat(2, 2)",
    "seq(",
    "batch(",
    "real",
    "max(",
    "h[t-1]",
    "^-1",
    "^0.5",
    "$",
    "µ",
    ".",
    "\t",
    "\r",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert { at: usize, token: usize },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 1usize..40, any::<usize>())
            .prop_map(|(at, len, to)| Mutation::Duplicate { at, len, to }),
    ]
}

/// Apply mutations on characters (so the text stays UTF-8); positions wrap around.
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        let n = chars.len() + 1;
        match *m {
            Mutation::Insert { at, token } => {
                let at = at % n;
                chars.splice(at..at, TOKENS[token].chars());
            }
            Mutation::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            Mutation::Duplicate { at, len, to } => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                let piece: Vec<char> = chars[at.min(end)..end].to_vec();
                let to = to % (chars.len() + 1);
                chars.splice(to..to, piece);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn random_text_never_panics() {
    small_stack(|| {
        let strategy = "[()\\[\\]+\\-*^.,=:# \nxyz019]{0,200}";
        runner()
            .run(&strategy, |text| parse_checked(&text))
            .expect("property holds");
    });
}

#[test]
fn random_token_sequences_never_panic() {
    small_stack(|| {
        let strategy = prop::collection::vec(0..TOKENS.len(), 0..120)
            .prop_map(|ix| ix.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" "));
        runner()
            .run(&strategy, |text| parse_checked(&text))
            .expect("property holds");
    });
}

#[test]
fn mutated_models_never_panic() {
    small_stack(|| {
        let seeds = corpus();
        assert!(!seeds.is_empty(), "no ok corpus");
        let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..12));
        runner()
            .run(&strategy, |(seed, mutations)| {
                parse_checked(&mutate(&seeds[seed], &mutations))
            })
            .expect("property holds");
    });
}

/// Deep nesting of every kind that recurses, around and beyond the limits.
fn hostile() -> impl Strategy<Value = String> {
    let opener = prop::sample::select(vec![
        "(", "[", "-", "x^", "-(", "f(", "[-", "(x+", "x^-", "- -", "x*(", "v[", "-x^",
    ]);
    let closer = prop::sample::select(vec![")", "]", ")^2", "]^-1", "+x)", ",1]", ""]);
    (
        prop::collection::vec(opener, 150..400),
        prop::collection::vec(closer, 0..400),
        0usize..3000,
    )
        .prop_map(|(open, close, sum)| {
            let mut s = String::from("minimize ");
            s.push_str(&open.concat());
            s.push('x');
            s.push_str(&" + x".repeat(sum));
            s.push_str(&close.concat());
            s.push('\n');
            s
        })
}

#[test]
fn hostile_nesting_never_overflows() {
    small_stack(|| {
        runner()
            .run(&hostile(), |text| parse_checked(&text))
            .expect("property holds");
    });
}
