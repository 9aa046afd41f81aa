//! `plot.svg`: the objective and the train and test losses against the iteration, on a log
//! scale when every plotted value is positive. Drawn with plotters' SVG backend, which needs no
//! system fonts.
//!
//! The curves are kept as [`Curves`]: the iterations fall into at most [`BUCKETS`] buckets of
//! equal width, each holding the lowest and highest point of every curve, and two neighbours
//! merge (the width doubles) when a run outgrows them. So a run of any length is plotted from a
//! few thousand points, and every extreme value stays on the plot.

use super::RenderError;
use plotters::prelude::*;

use crate::solve::Row;

/// The most buckets [`Curves`] keeps (each gives at most two points per curve).
pub const BUCKETS: usize = 1024;

/// The training curves of a run, bucketed (objective, train loss, test loss).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    /// Iterations per bucket (a power of two).
    width: u64,
    buckets: Vec<Bucket>,
    last_iter: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Bucket {
    /// `iter / width` of its iterations.
    index: u64,
    series: [Option<Extent>; 3],
}

/// The lowest and highest point of one curve in a bucket, as (iteration, value).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Extent {
    min: (u64, f64),
    max: (u64, f64),
}

impl Extent {
    fn merge(self, o: Extent) -> Extent {
        Extent {
            min: if o.min.1 < self.min.1 {
                o.min
            } else {
                self.min
            },
            max: if o.max.1 > self.max.1 {
                o.max
            } else {
                self.max
            },
        }
    }
}

impl Curves {
    pub fn new() -> Curves {
        Curves {
            width: 1,
            buckets: Vec::new(),
            last_iter: 0,
        }
    }

    /// The curves of `rows` (in iteration order).
    pub fn of_rows(rows: &[Row]) -> Curves {
        let mut c = Curves::new();
        for r in rows {
            c.push_row(r);
        }
        c
    }

    /// Add a row's objective and losses.
    pub fn push_row(&mut self, r: &Row) {
        self.push(r.iter, [Some(r.objective), Some(r.train_loss), r.test_loss]);
    }

    /// Add the values at iteration `iter` (after every earlier one): objective, train loss and
    /// test loss; values that are missing or not finite are not plotted.
    pub fn push(&mut self, iter: u64, values: [Option<f64>; 3]) {
        self.width = self.width.max(1);
        self.last_iter = iter;
        let index = iter / self.width;
        if self.buckets.last().is_none_or(|b| b.index != index) {
            self.buckets.push(Bucket {
                index,
                series: [None; 3],
            });
        }
        if let Some(b) = self.buckets.last_mut() {
            for (slot, v) in b.series.iter_mut().zip(values) {
                let Some(v) = v.filter(|v| v.is_finite()) else {
                    continue;
                };
                let e = Extent {
                    min: (iter, v),
                    max: (iter, v),
                };
                *slot = Some(slot.map_or(e, |s| s.merge(e)));
            }
        }
        if self.buckets.len() > BUCKETS {
            self.halve();
        }
    }

    /// Double the width: merge the buckets that now share an index.
    fn halve(&mut self) {
        self.width *= 2;
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for mut b in self.buckets.drain(..) {
            b.index /= 2;
            match merged.last_mut() {
                Some(m) if m.index == b.index => {
                    for (a, o) in m.series.iter_mut().zip(b.series) {
                        *a = match (*a, o) {
                            (Some(x), Some(y)) => Some(x.merge(y)),
                            (x, y) => x.or(y),
                        };
                    }
                }
                _ => merged.push(b),
            }
        }
        self.buckets = merged;
    }

    /// The points of curve `k` (0 objective, 1 train loss, 2 test loss) in iteration order.
    fn points(&self, k: usize) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for e in self.buckets.iter().filter_map(|b| b.series[k]) {
            let (a, b) = if e.min.0 <= e.max.0 {
                (e.min, e.max)
            } else {
                (e.max, e.min)
            };
            out.push((a.0 as f64, a.1));
            if b != a {
                out.push((b.0 as f64, b.1));
            }
        }
        out
    }
}

/// One curve: its legend, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// The SVG text of the training curves.
pub fn loss_svg(curves: &Curves, title: &str) -> Result<Vec<u8>, RenderError> {
    let series: Vec<Series<'_>> = vec![
        ("objective", BLUE, curves.points(0)),
        ("train loss", RED, curves.points(1)),
        ("test loss", GREEN, curves.points(2)),
    ];
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .collect();
    let x_max = curves.last_iter.max(1) as f64;
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(RenderError::svg)?;
        let mut chart = ChartBuilder::on(&root);
        chart
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70);
        if lo > 0.0 {
            let mut c = chart
                .build_cartesian_2d(0.0..x_max, (lo * 0.9..hi * 1.1).log_scale())
                .map_err(RenderError::svg)?;
            c.configure_mesh()
                .x_desc("iteration")
                .y_desc("value (log scale)")
                .draw()
                .map_err(RenderError::svg)?;
            draw_series(&mut c, series)?;
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-12);
            let mut c = chart
                .build_cartesian_2d(0.0..x_max, lo - pad..hi + pad)
                .map_err(RenderError::svg)?;
            c.configure_mesh()
                .x_desc("iteration")
                .y_desc("value")
                .draw()
                .map_err(RenderError::svg)?;
            draw_series(&mut c, series)?;
        }
        root.present().map_err(RenderError::svg)?;
    }
    Ok(svg.into_bytes())
}

fn draw_series<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    series: Vec<Series<'_>>,
) -> Result<(), RenderError>
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
            .map_err(RenderError::svg)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(RenderError::svg)
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
        let svg =
            String::from_utf8(loss_svg(&Curves::of_rows(&rows), "adam on syn").unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in ["objective", "train loss", "test loss", "iteration"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(svg.matches("<polyline").count() >= 3);
    }

    #[test]
    fn a_long_run_keeps_a_bounded_number_of_points_and_its_extremes() {
        let mut c = Curves::new();
        for k in 0..100_000u64 {
            let spike = if k == 77_777 {
                1e6
            } else {
                1.0 / (k + 1) as f64
            };
            c.push(k, [Some(spike), Some(2.0), None]);
        }
        let pts = c.points(0);
        assert!(pts.len() <= 2 * BUCKETS, "{}", pts.len());
        assert!(pts.len() >= BUCKETS / 2, "{}", pts.len());
        assert!(pts.contains(&(77_777.0, 1e6)));
        assert!(pts.contains(&(99_999.0, 1e-5)));
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(c.points(2).is_empty());
        // Fewer rows than buckets: every point is kept.
        let rows: Vec<Row> = (0..10)
            .map(|k| Row {
                iter: k,
                objective: k as f64,
                train_loss: 1.0,
                test_loss: None,
                seconds: 0.0,
                stationarity: f64::NAN,
                metrics: vec![],
            })
            .collect();
        assert_eq!(Curves::of_rows(&rows).points(0).len(), 10);
    }
}
