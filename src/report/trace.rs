//! `trace.csv`, appended to as a run goes: one row per iteration from iteration 0, columns
//! `iter, objective, train_loss, test_loss, seconds, stationarity` and then each solver metric.
//! Numbers are written in Rust's shortest round-trip form; a missing value (no test split, no
//! metric at row 0) is empty.

use crate::solve::Row;

/// The CSV text of `rows` with the solver's `metrics` as extra columns (a metric named
/// `objective` is not repeated: the row's objective already is that metric).
pub fn trace_csv(rows: &[Row], metrics: &[String]) -> Vec<u8> {
    let mut s = header(metrics);
    s.push('\n');
    for r in rows {
        s.push_str(&line(r, metrics));
        s.push('\n');
    }
    s.into_bytes()
}

/// The header line (without its newline): the fixed columns, then each metric but `objective`.
pub fn header(metrics: &[String]) -> String {
    let mut s = String::from("iter,objective,train_loss,test_loss,seconds,stationarity");
    for m in metrics.iter().filter(|m| *m != "objective") {
        s.push(',');
        s.push_str(m);
    }
    s
}

/// The column of metric `name` in the lines of [`line`] (`None`: not a column).
pub fn column(metrics: &[String], name: &str) -> Option<usize> {
    let kept: Vec<&String> = metrics.iter().filter(|m| *m != "objective").collect();
    kept.iter().position(|m| *m == name).map(|i| 6 + i)
}

/// The line of one row (without its newline), in the columns of [`header`].
pub fn line(r: &Row, metrics: &[String]) -> String {
    let mut s = r.iter.to_string();
    let keep = metrics.iter().map(|m| m != "objective");
    let extra = r
        .metrics
        .iter()
        .zip(keep.chain(std::iter::repeat(true)))
        .filter(|(_, k)| *k)
        .map(|(m, _)| Some(*m));
    for v in [
        Some(r.objective),
        Some(r.train_loss),
        r.test_loss,
        Some(r.seconds),
        Some(r.stationarity),
    ]
    .into_iter()
    .chain(extra)
    {
        s.push(',');
        if let Some(v) = v.filter(|v| !v.is_nan()) {
            s.push_str(&v.to_string());
        }
    }
    s
}

/// The numbers of a line written by [`line`], by column (an empty field is `None`); `None`
/// when a field is not a number.
pub fn parse_line(text: &str) -> Option<Vec<Option<f64>>> {
    text.split(',')
        .map(|f| {
            if f.is_empty() {
                Some(None)
            } else {
                f.parse::<f64>().ok().map(Some)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_rows_with_empty_missing_values() {
        let rows = vec![
            Row {
                iter: 0,
                objective: 1.5,
                train_loss: 1.0,
                test_loss: None,
                seconds: 0.0,
                stationarity: f64::NAN,
                metrics: vec![f64::NAN],
            },
            Row {
                iter: 1,
                objective: 0.1 + 0.2,
                train_loss: 0.25,
                test_loss: Some(2.0),
                seconds: 0.5,
                stationarity: 1e-3,
                metrics: vec![4.0],
            },
        ];
        let text = String::from_utf8(trace_csv(&rows, &["grad_norm".into()])).unwrap();
        assert_eq!(
            text,
            "iter,objective,train_loss,test_loss,seconds,stationarity,grad_norm\n\
             0,1.5,1,,0,,\n\
             1,0.30000000000000004,0.25,2,0.5,0.001,4\n"
        );
        let back = parse_line(&line(&rows[1], &["grad_norm".into()])).unwrap();
        assert_eq!(back[1], Some(0.1 + 0.2));
        assert_eq!(
            back[column(&["grad_norm".into()], "grad_norm").unwrap()],
            Some(4.0)
        );
        assert_eq!(parse_line("0,1.5,,x"), None);
    }
}
