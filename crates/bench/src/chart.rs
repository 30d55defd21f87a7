//! The SVG chart of a run: latency CDF on the left, deliveries per second on the right.

use std::path::Path;

use plotters::prelude::*;

use crate::measure::Report;

/// Draws `report` into `path`.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let caption = ("sans-serif", 16);

    if let Some(latency) = report.latency.as_ref().or(report.ack_latency.as_ref()) {
        let max = latency.cdf.iter().map(|p| p.1).fold(0.1, f64::max);
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{}: latency CDF (ms)", report.scenario), caption)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..max * 1.05, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("fraction")
            .draw()?;
        chart.draw_series(LineSeries::new(
            latency.cdf.iter().map(|(q, ms)| (*ms, *q)),
            &BLUE,
        ))?;
    }

    let counts = &report.timeline;
    if !counts.is_empty() {
        let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(&right)
            .caption("deliveries per second", caption)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..counts.len() as f64, 0.0..max * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("second")
            .y_desc("deliveries/s")
            .draw()?;
        chart.draw_series(LineSeries::new(
            counts
                .iter()
                .enumerate()
                .map(|(i, c)| (i as f64, *c as f64)),
            &RED,
        ))?;
    }
    root.present()?;
    Ok(())
}
