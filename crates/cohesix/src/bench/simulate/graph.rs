//! The graph of a run: workers, offered and achieved rate, error rate and
//! p95 over time, four panels sharing the time axis, as SVG and PNG.
//!
//! Text needs a font file at run time (Debian's fonts-dejavu-core, which
//! `bench/install-deps.sh` installs); without one the same panels are drawn
//! with no text at all rather than failing the run.

use super::stats::TimelineRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Fonts tried in order; the first that loads is used.
const FONT_FILES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
const SIZE: (u32, u32) = (1100, 1000);
const FAMILY: &str = "sans-serif";

/// Registers a font once; whether text can be drawn.
fn text_available() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        FONT_FILES.iter().any(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            // Leaked once per process: plotters keeps fonts for 'static.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
        })
    })
}

/// Writes `<stem>.svg` and `<stem>.png` into `dir`; says whether text was
/// drawn.
pub fn write(dir: &Path, stem: &str, title: &str, rows: &[TimelineRow]) -> Result<bool, String> {
    let text = text_available();
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    draw(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        title,
        rows,
        text,
    )?;
    draw(
        BitMapBackend::new(&png, SIZE).into_drawing_area(),
        title,
        rows,
        text,
    )?;
    Ok(text)
}

/// A named line: its legend, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

struct Panel<'a> {
    name: &'a str,
    series: Vec<Series<'a>>,
}

fn panels(rows: &[TimelineRow]) -> Vec<Panel<'static>> {
    let line = |f: fn(&TimelineRow) -> f64| rows.iter().map(|r| (r.t_s, f(r))).collect();
    vec![
        Panel {
            name: "workers",
            series: vec![("live workers", BLUE, line(|r| f64::from(r.workers)))],
        },
        Panel {
            name: "ops/s",
            series: vec![
                ("offered", RGBColor(150, 150, 150), line(|r| r.offered_rps)),
                ("achieved", RGBColor(0, 130, 0), line(|r| r.achieved_rps)),
            ],
        },
        Panel {
            name: "error rate %",
            series: vec![("errors", RED, line(|r| r.err_rate * 100.0))],
        },
        Panel {
            name: "p95 ms",
            series: vec![("p95", RGBColor(140, 0, 160), line(|r| r.p95_ms))],
        },
    ]
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    rows: &[TimelineRow],
    text: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("graph: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let area = if text {
        root.titled(title, (FAMILY, 22)).map_err(e)?
    } else {
        root.clone()
    };
    let t_max = rows.last().map_or(1.0, |r| r.t_s).max(1.0);
    for (panel, cell) in panels(rows).iter().zip(area.split_evenly((4, 1))) {
        let y_max = panel
            .series
            .iter()
            .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let labels = if text { 75 } else { 0 };
        let mut chart = ChartBuilder::on(&cell)
            .margin(8)
            .x_label_area_size(if text { 28 } else { 0 })
            .y_label_area_size(labels)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(e)?;
        let whole = y_max >= 10.0;
        let x_fmt = move |x: &f64| {
            if t_max >= 20.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        };
        let y_fmt = move |y: &f64| {
            if whole {
                format!("{y:.0}")
            } else {
                format!("{y:.2}")
            }
        };
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("seconds")
                .y_desc(panel.name)
                .label_style((FAMILY, 13))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(e)?;
        for (name, color, pts) in &panel.series {
            let series = chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(e)?;
            if text {
                let color = *color;
                series.label(*name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font((FAMILY, 13))
                .draw()
                .map_err(e)?;
        }
    }
    root.present().map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_is_written_with_or_without_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<TimelineRow> = (1..=30)
            .map(|t| TimelineRow {
                t_s: f64::from(t),
                workers: t as u32 * 10,
                offered_rps: f64::from(t),
                achieved_rps: f64::from(t) * 0.9,
                err_rate: 0.0,
                p95_ms: 2.5,
            })
            .collect();
        write(dir.path(), "graph", "test", &rows).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("graph.svg")).unwrap();
        assert!(svg.contains("<svg"));
        let png = std::fs::read(dir.path().join("graph.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // Without rows the axes still draw.
        write(dir.path(), "empty", "empty", &[]).unwrap();
    }
}
