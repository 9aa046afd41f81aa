//! Data binding built as the command line builds it (no run file): layouts, splits, errors.

use std::path::{Path, PathBuf};

use mcopt::config::{
    bind, parse_cli_binding, parse_row_sel, ColumnSel, DataSlot, DataSpec, HeaderMode, RowSel,
    SeqLayout, Split, TestState,
};

fn spec(
    file: &str,
    bind: Vec<(&str, ColumnSel)>,
    train: RowSel,
    test: Option<RowSel>,
    seq: SeqLayout,
) -> DataSpec {
    DataSpec {
        file: PathBuf::from(file),
        header: HeaderMode::Auto,
        bind: bind.into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
        train,
        test,
        sequences: seq,
        test_state: TestState::Carry,
        origin: None,
    }
}

fn slot(name: &str, width: usize) -> DataSlot {
    DataSlot {
        name: name.into(),
        width,
    }
}

fn names(v: &[&str]) -> ColumnSel {
    ColumnSel::Names(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn sequence_id_column_groups_rows_and_steps_are_major() {
    let s = spec(
        "seq.csv",
        vec![("x", names(&["a"])), ("z", names(&["a", "b"]))],
        RowSel::Range { start: 0, end: 2 },
        Some(RowSel::All),
        SeqLayout::Column("seq".into()),
    );
    let dir = Path::new("tests/config/bind");
    let train = bind(&s, dir, Split::Train, &[slot("x", 1), slot("z", 2)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((train[0].sequences, train[0].steps), (2, 2));
    // Sequence 1 is rows 1,3,5 of the file (a = 10, 11, 12), sequence 2 rows 2,4,6 (a = 20, 21, 22).
    assert_eq!(train[0].values, [10.0, 20.0, 11.0, 21.0]);
    // Per step a column-major 2×2 matrix: (a, b) of sequence 1, then of sequence 2.
    assert_eq!(
        train[1].values,
        [10.0, 100.0, 20.0, 200.0, 11.0, 101.0, 21.0, 201.0]
    );
    let test =
        bind(&s, dir, Split::Test, &[slot("x", 1), slot("z", 2)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(test[0].values, [10.0, 20.0, 11.0, 21.0, 12.0, 22.0]);
}

#[test]
fn fractions_split_each_sequence() {
    let s = spec(
        "seq.csv",
        vec![("x", names(&["a"]))],
        RowSel::Fraction(0.5),
        None,
        SeqLayout::Column("seq".into()),
    );
    let dir = Path::new("tests/config/bind");
    let train = bind(&s, dir, Split::Train, &[slot("x", 1)]).unwrap_or_else(|e| panic!("{e}"));
    let test = bind(&s, dir, Split::Test, &[slot("x", 1)]).unwrap_or_else(|e| panic!("{e}"));
    // floor(0.5 * 3) = 1 training step, the other 2 are the test split. It follows the
    // training step, so the training step comes first as a warm-up that carries the state over.
    assert_eq!(train[0].values, [10.0, 20.0]);
    assert_eq!((train[0].steps, train[0].warmup), (1, 0));
    assert_eq!(test[0].values, [10.0, 20.0, 11.0, 21.0, 12.0, 22.0]);
    assert_eq!((test[0].steps, test[0].warmup), (3, 1));
    let restart = DataSpec {
        test_state: TestState::Restart,
        ..s
    };
    let test = bind(&restart, dir, Split::Test, &[slot("x", 1)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(test[0].values, [11.0, 21.0, 12.0, 22.0]);
    assert_eq!((test[0].steps, test[0].warmup), (2, 0));
}

#[test]
fn a_test_split_after_a_gap_or_before_the_training_steps_restarts() {
    let file = "examples/data/syn_T10.csv";
    let x = || vec![("x", ColumnSel::Indices(vec![0]))];
    let at = |train: (usize, usize), test: (usize, usize)| {
        let s = spec(
            file,
            x(),
            RowSel::Range {
                start: train.0,
                end: train.1,
            },
            Some(RowSel::Range {
                start: test.0,
                end: test.1,
            }),
            SeqLayout::Single,
        );
        let b =
            bind(&s, Path::new(""), Split::Test, &[slot("x", 1)]).unwrap_or_else(|e| panic!("{e}"));
        (b[0].steps, b[0].warmup)
    };
    // Directly after the training steps: one pass over both.
    assert_eq!(at((0, 8), (8, 10)), (10, 8));
    assert_eq!(at((2, 8), (8, 10)), (8, 6));
    // A gap, an overlap, or the test steps first: the state cannot be carried over.
    assert_eq!(at((0, 7), (8, 10)), (2, 0));
    assert_eq!(at((0, 9), (8, 10)), (2, 0));
    assert_eq!(at((2, 10), (0, 2)), (2, 0));
}

#[test]
fn blocks_cut_the_file_into_equal_sequences() {
    let s = spec(
        "examples/data/syn_T10.csv",
        vec![("y", ColumnSel::Indices(vec![7]))],
        RowSel::All,
        None,
        SeqLayout::Blocks(2),
    );
    let b =
        bind(&s, Path::new(""), Split::Train, &[slot("y", 1)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b[0].sequences, b[0].steps), (2, 5));
    // Column 7 of lines 1 and 6 of syn_T10.csv (step 0 of both blocks), then lines 2 and 7.
    assert_eq!(
        b[0].values[..4],
        [
            -1.4818568451973955,
            0.2901481663252539,
            -0.31647291442689146,
            -0.1514795484738884
        ]
    );
}

#[test]
fn binding_errors_without_a_run_file_name_the_data_file() {
    let s = spec(
        "examples/data/syn_T10.csv",
        vec![("x", ColumnSel::Range { start: 0, end: 5 })],
        RowSel::Range { start: 0, end: 8 },
        None,
        SeqLayout::Single,
    );
    let e = bind(&s, Path::new(""), Split::Test, &[slot("x", 5)]).unwrap_err();
    assert_eq!(e.0[0].code, "mcopt::data::no_test");
    let e = bind(
        &s,
        Path::new(""),
        Split::Train,
        &[slot("x", 4), slot("y", 3)],
    )
    .unwrap_err();
    let codes: Vec<&str> = e.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["mcopt::data::width", "mcopt::data::unbound"]);
    assert_eq!(e.0[0].path.as_deref(), Some("examples/data/syn_T10.csv"));
    let s = spec(
        "uneven.csv",
        vec![("x", names(&["a"]))],
        RowSel::All,
        None,
        SeqLayout::Column("seq".into()),
    );
    let e = bind(
        &s,
        Path::new("tests/config/bind"),
        Split::Train,
        &[slot("x", 1)],
    )
    .unwrap_err();
    assert_eq!(e.0[0].code, "mcopt::data::sequences");
    assert!(e.0[0].message.contains("2, 1"), "{}", e.0[0].message);
}

#[test]
fn cli_forms_build_a_spec() {
    let (name, file, cols) = parse_cli_binding("y=examples/data/sp500.csv:RV_SP500").unwrap();
    let s = DataSpec {
        file,
        header: HeaderMode::Auto,
        bind: vec![
            (name, cols),
            (
                "x".into(),
                ColumnSel::NameRange {
                    first: "DP".into(),
                    last: "IP".into(),
                },
            ),
        ],
        train: parse_row_sel("0.9").unwrap(),
        test: None,
        sequences: SeqLayout::Single,
        test_state: TestState::Carry,
        origin: None,
    };
    let test = bind(
        &s,
        Path::new(""),
        Split::Test,
        &[slot("x", 11), slot("y", 1)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // 393 training steps carried over, then the 44 test steps (the rest after `0.9`).
    assert_eq!(
        (test[0].steps, test[0].warmup, test[0].width),
        (437, 393, 11)
    );
    // Last line of sp500.csv: RV_SP500 = 0.9647271390433217.
    assert_eq!(test[1].values.last(), Some(&0.9647271390433217));
}
