//! The SVG line plot of f(x + t·d) against t along a direction: the descent of a witness or
//! the kink of the flattest direction checked. Drawn with plotters' SVG backend, which needs
//! no system fonts.

use super::RenderError;
use plotters::prelude::*;

/// The SVG text of the curve `points` (t, f), with the point itself (t = 0) marked.
pub fn along_direction(points: &[(f64, f64)], title: &str) -> Result<Vec<u8>, RenderError> {
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    let (t0, t1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let (t0, t1) = if t0 < t1 { (t0, t1) } else { (-1.0, 1.0) };
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-12 * (1.0 + hi.abs()));
    let f0 = finite
        .iter()
        .min_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
        .map(|p| p.1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(RenderError::svg)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(t0..t1, lo - pad..hi + pad)
            .map_err(RenderError::svg)?;
        chart
            .configure_mesh()
            .x_desc("t")
            .y_desc("f(x + t d)")
            .draw()
            .map_err(RenderError::svg)?;
        chart
            .draw_series(LineSeries::new(finite, BLUE.stroke_width(2)))
            .map_err(RenderError::svg)?;
        if let Some(f0) = f0 {
            chart
                .draw_series(std::iter::once(Circle::new((0.0, f0), 4, RED.filled())))
                .map_err(RenderError::svg)?;
        }
        root.present().map_err(RenderError::svg)?;
    }
    Ok(svg.into_bytes())
}
