//! `trace.csv`: one row per iteration from iteration 0, columns `iter, objective, train_loss,
//! test_loss, seconds, stationarity` and then each solver metric. Numbers are written in Rust's
//! shortest round-trip form; a missing value (no test split, no metric at row 0) is empty.

use crate::solve::Row;

/// The CSV text of `rows` with the solver's `metrics` as extra columns (a metric named
/// `objective` is not repeated: the row's objective already is that metric).
pub fn trace_csv(rows: &[Row], metrics: &[String]) -> Vec<u8> {
    let mut s = String::from("iter,objective,train_loss,test_loss,seconds,stationarity");
    let keep: Vec<bool> = metrics.iter().map(|m| m != "objective").collect();
    for m in metrics.iter().filter(|m| *m != "objective") {
        s.push(',');
        s.push_str(m);
    }
    s.push('\n');
    for r in rows {
        s.push_str(&r.iter.to_string());
        for v in [
            Some(r.objective),
            Some(r.train_loss),
            r.test_loss,
            Some(r.seconds),
            Some(r.stationarity),
        ]
        .into_iter()
        .chain(
            r.metrics
                .iter()
                .zip(keep.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, k)| **k)
                .map(|(m, _)| Some(*m)),
        ) {
            s.push(',');
            if let Some(v) = v.filter(|v| !v.is_nan()) {
                s.push_str(&v.to_string());
            }
        }
        s.push('\n');
    }
    s.into_bytes()
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
    }
}
