//! The chart of the load benchmark's connection sweep (`SWEEP=1 benches/load.sh`): requests per
//! second against wrk's connections, one line per server, as an SVG.
//!
//! ```text
//! cargo run --release --example load_chart -- SWEEP_CSV OUT_SVG [CAPTION]
//! ```
//!
//! `SWEEP_CSV` holds a header line and then `series,connections,requests_per_second` lines (more
//! columns are ignored); a series with several values at one connection count (several sweep
//! rounds) is drawn through their median. Series are drawn in the order they first appear.

use std::collections::BTreeMap;
use std::error::Error;

use plotters::prelude::*;

/// The lines' colours, in series order (then again).
const COLORS: [RGBColor; 6] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// One line of the chart: its label and its (connections, req/s) points, in connection order.
struct Series {
    label: String,
    points: Vec<(u32, f64)>,
}

/// Reads the sweep's CSV into series, taking the median of repeated points.
fn read_series(text: &str) -> Result<Vec<Series>, Box<dyn Error>> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<(String, u32), Vec<f64>> = BTreeMap::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [label, connections, rps, ..] = fields[..] else {
            return Err(format!("line {}: expected series,connections,req/s", number + 1).into());
        };
        let connections: u32 = connections
            .parse()
            .map_err(|err| format!("line {}: connections: {err}", number + 1))?;
        let rps: f64 = rps
            .parse()
            .map_err(|err| format!("line {}: req/s: {err}", number + 1))?;
        if !order.iter().any(|known| known == label) {
            order.push(label.to_owned());
        }
        values
            .entry((label.to_owned(), connections))
            .or_default()
            .push(rps);
    }
    Ok(order
        .into_iter()
        .map(|label| {
            let points = values
                .iter_mut()
                .filter(|((name, _), _)| *name == label)
                .map(|((_, connections), rps)| (*connections, median(rps)))
                .collect();
            Series { label, points }
        })
        .collect())
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Draws `series` into the SVG file `out`.
fn draw(series: &[Series], out: &str, caption: &str) -> Result<(), Box<dyn Error>> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let mut connections: Vec<u32> = points().map(|&(c, _)| c).collect();
    connections.sort_unstable();
    connections.dedup();
    let (Some(&min_connections), Some(&max_connections)) =
        (connections.first(), connections.last())
    else {
        return Err("no points".into());
    };
    let max_rps = points().map(|&(_, rps)| rps).fold(0.0, f64::max);

    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            // A label at every connection count of the sweep.
            (min_connections..max_connections)
                .log_scale()
                .with_key_points(connections),
            0.0..max_rps * 1.25,
        )?;
    chart
        .configure_mesh()
        .x_desc("wrk connections (log scale)")
        .y_desc("requests per second")
        .x_label_formatter(&|c| c.to_string())
        .y_label_formatter(&|rps| format!("{rps:.0}"))
        .draw()?;
    for (index, line) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()].to_rgba();
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            line.points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, out, rest @ ..] = &args[..] else {
        return Err("usage: load_chart SWEEP_CSV OUT_SVG [CAPTION]".into());
    };
    let caption = rest
        .first()
        .map_or("requests per second against connections", String::as_str);
    let series =
        read_series(&std::fs::read_to_string(csv).map_err(|err| format!("{csv}: {err}"))?)?;
    draw(&series, out, caption)?;
    eprintln!("wrote {out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_points_are_drawn_through_their_median_in_series_order() {
        let csv = "series,connections,requests_per_second,cpu\n\
                   no auth,16,300,1\n\
                   no auth,8,100,1\n\
                   layer,8,50,1\n\
                   no auth,8,200,1\n\
                   no auth,8,900,1\n";
        let series = read_series(csv).unwrap();
        let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["no auth", "layer"]);
        assert_eq!(series[0].points, [(8, 200.0), (16, 300.0)]);
        assert_eq!(series[1].points, [(8, 50.0)]);
    }

    #[test]
    fn a_line_without_three_fields_is_an_error_naming_it() {
        let error = read_series("header\nno auth,8\n").err().unwrap();
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
