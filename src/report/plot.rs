//! `plot.svg`: the objective and the train and test losses against the iteration, on a log
//! scale when every plotted value is positive. Drawn with plotters' SVG backend, which needs no
//! system fonts.

use plotters::prelude::*;

use crate::solve::Row;

/// One curve: its legend, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// The SVG text of the training curves of `rows`.
pub fn loss_svg(rows: &[Row], title: &str) -> Result<Vec<u8>, String> {
    let series: Vec<Series<'_>> = vec![
        ("objective", BLUE, points(rows, |r| Some(r.objective))),
        ("train loss", RED, points(rows, |r| Some(r.train_loss))),
        ("test loss", GREEN, points(rows, |r| r.test_loss)),
    ];
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .collect();
    let x_max = rows.last().map_or(1.0, |r| r.iter.max(1) as f64);
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root);
        chart
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70);
        if lo > 0.0 {
            let mut c = chart
                .build_cartesian_2d(0.0..x_max, (lo * 0.9..hi * 1.1).log_scale())
                .map_err(|e| e.to_string())?;
            c.configure_mesh()
                .x_desc("iteration")
                .y_desc("value (log scale)")
                .draw()
                .map_err(|e| e.to_string())?;
            draw_series(&mut c, series)?;
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-12);
            let mut c = chart
                .build_cartesian_2d(0.0..x_max, lo - pad..hi + pad)
                .map_err(|e| e.to_string())?;
            c.configure_mesh()
                .x_desc("iteration")
                .y_desc("value")
                .draw()
                .map_err(|e| e.to_string())?;
            draw_series(&mut c, series)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg.into_bytes())
}

fn points(rows: &[Row], f: impl Fn(&Row) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.iter as f64, v)))
        .collect()
}

fn draw_series<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    series: Vec<Series<'_>>,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    for (name, color, pts) in series {
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_an_svg_document_with_the_three_curves() {
        let rows: Vec<Row> = (0..5)
            .map(|k| Row {
                iter: k,
                objective: 1.0 / (k + 1) as f64,
                train_loss: 0.5 / (k + 1) as f64,
                test_loss: Some(0.7),
                seconds: 0.0,
                stationarity: f64::NAN,
                metrics: vec![],
            })
            .collect();
        let svg = String::from_utf8(loss_svg(&rows, "adam on syn").unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in ["objective", "train loss", "test loss", "iteration"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(svg.matches("<polyline").count() >= 3);
    }
}
