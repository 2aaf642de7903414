//! seqls-plot: the figures of `seqls eval` and `seqls sweep`, each written as PNG and SVG
//! (`<stem>.png`, `<stem>.svg`, each to a temporary file renamed into place).
//!
//! - [`Reliability`]: a reliability diagram: per equal-width bin, the accuracy bar, the gap between
//!   accuracy and mean confidence (red), the mean confidence mark, the diagonal of perfect
//!   calibration, ECE in the title, and the share of tokens per bin underneath. Several diagrams side
//!   by side make a grid ([`ReliabilityGrid`]).
//! - [`LineChart`]: lines with markers, one per series (BLEU vs beam, ECE vs α, NLL per epoch …).
//! - [`Scatter`]: labelled point clouds in panels side by side (the penultimate-layer picture).
//!
//! Text uses DejaVu Sans, embedded (its licence is in `fonts/`), so the figures need no system fonts.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use seqls_eval::calibration::Calibration;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Why a figure could not be written: the file, and what plotters or the file system said.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Drawing failed (plotters' errors are generic over the backend, so they arrive as text).
    #[error("{}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Res = Result<(), Box<dyn Error>>;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            // Cannot fail: the font is compiled into the binary (include_bytes!) and checked by the tests.
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
}

/// Line colours, in series order.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Something that draws itself on any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static;
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `figure` to `<stem>.png` and `<stem>.svg`; returns the two paths.
pub fn save(figure: &impl Figure, stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    register_font();
    let describe = |p: &Path, e: &dyn std::fmt::Display| PlotError::Draw {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| PlotError::Io { path, source }
    };
    let (png, svg) = (with_suffix(stem, ".png"), with_suffix(stem, ".svg"));
    let png_tmp = with_suffix(stem, ".tmp.png");
    {
        let root = BitMapBackend::new(&png_tmp, figure.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| describe(&png, &e))?;
        figure.draw(&root).map_err(|e| describe(&png, &e))?;
        root.present().map_err(|e| describe(&png, &e))?;
    }
    std::fs::rename(&png_tmp, &png).map_err(io(&png))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, figure.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| describe(&svg, &e))?;
        figure.draw(&root).map_err(|e| describe(&svg, &e))?;
        root.present().map_err(|e| describe(&svg, &e))?;
    }
    let svg_tmp = with_suffix(stem, ".svg.tmp");
    std::fs::write(&svg_tmp, text).map_err(io(&svg))?;
    std::fs::rename(&svg_tmp, &svg).map_err(io(&svg))?;
    Ok([png, svg])
}

/// A chart's legend at `position`, in `font_size`-point text on a white box of opacity `background`.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
    font_size: u32,
    background: f64,
) -> Res
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(background))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// One reliability diagram.
pub struct Reliability<'a> {
    pub title: String,
    pub calibration: &'a Calibration,
}

impl Reliability<'_> {
    fn draw_on<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let c = self.calibration;
        let m = c.num_bins.max(1) as f64;
        let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 * 3 / 4);
        let mut chart = ChartBuilder::on(&top)
            .caption(format!("{} (ECE {:.4})", self.title, c.ece), (FONT, 16))
            .margin(8)
            .x_label_area_size(20)
            .y_label_area_size(42)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .y_desc("accuracy")
            .x_labels(6)
            .y_labels(6)
            .label_style((FONT, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let bins = 0..c.num_bins;
        let filled = |b: &usize| c.bin_count[*b] > 0;
        chart.draw_series(bins.clone().filter(filled).map(|b| {
            Rectangle::new(
                [(b as f64 / m, 0.0), ((b + 1) as f64 / m, c.bin_accuracy[b])],
                PALETTE[0].mix(0.75).filled(),
            )
        }))?;
        chart.draw_series(bins.clone().filter(filled).map(|b| {
            let (acc, conf) = (c.bin_accuracy[b], c.bin_confidence[b]);
            Rectangle::new(
                [
                    (b as f64 / m, acc.min(conf)),
                    ((b + 1) as f64 / m, acc.max(conf)),
                ],
                RED.mix(0.35).filled(),
            )
        }))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.stroke_width(1),
            ))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        chart
            .draw_series(
                bins.clone().filter(filled).map(|b| {
                    Circle::new((c.bin_confidence[b], c.bin_accuracy[b]), 3, BLACK.filled())
                }),
            )?
            .label("(mean confidence, accuracy)")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.filled()));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                RED.mix(0.35).filled(),
            )))?
            .label("gap")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], RED.mix(0.35).filled()));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, 11, 0.8)?;

        let total = c.bin_count.iter().sum::<usize>().max(1) as f64;
        let peak = c
            .bin_count
            .iter()
            .map(|&n| n as f64 / total)
            .fold(0.0, f64::max)
            .max(1e-9);
        let mut hist = ChartBuilder::on(&bottom)
            .margin_left(8)
            .margin_right(8)
            .x_label_area_size(30)
            .y_label_area_size(42)
            .build_cartesian_2d(0f64..1f64, 0f64..peak * 1.05)?;
        hist.configure_mesh()
            .x_desc("confidence")
            .y_desc("share")
            .x_labels(6)
            .y_labels(3)
            .label_style((FONT, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        hist.draw_series(bins.filter(filled).map(|b| {
            Rectangle::new(
                [
                    (b as f64 / m, 0.0),
                    ((b + 1) as f64 / m, c.bin_count[b] as f64 / total),
                ],
                RGBColor(90, 90, 90).filled(),
            )
        }))?;
        Ok(())
    }
}

impl Figure for Reliability<'_> {
    fn size(&self) -> (u32, u32) {
        (480, 520)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        self.draw_on(area)
    }
}

/// Reliability diagrams side by side, `columns` per row.
pub struct ReliabilityGrid<'a> {
    pub panels: Vec<Reliability<'a>>,
    pub columns: usize,
}

impl Figure for ReliabilityGrid<'_> {
    fn size(&self) -> (u32, u32) {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        (480 * cols as u32, 520 * rows as u32)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        for (panel, cell) in self.panels.iter().zip(area.split_evenly((rows, cols))) {
            panel.draw_on(&cell)?;
        }
        Ok(())
    }
}

/// One named line of a [`LineChart`].
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Error bar half-widths, one per point (e.g. the standard deviation over seeds); empty for none.
    pub errors: Vec<f64>,
}

impl Series {
    /// A line without error bars.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.into(),
            points,
            errors: Vec::new(),
        }
    }
}

/// Lines with markers over a shared x axis.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Plot x on a log2 axis (beam sizes 1, 2, 4, 8 …).
    pub log2_x: bool,
}

/// The head room above the data, as a multiple of the data's y range, that an upper-right legend of
/// `rows` series needs: each row takes about 16 px and the box 16 px more of the plot's 340 px, so the
/// legend covers a share `f = (16·rows + 16)/340` of the height, and the axis must extend `f/(1 − f)`
/// of the data's range above it; at least 0.3.
fn legend_headroom(rows: usize) -> f64 {
    let share = ((16 * rows + 16) as f64 / 340.0).min(0.7);
    (share / (1.0 - share)).max(0.3)
}

fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1e-3) * 0.01);
    (lo - pad)..(hi + pad)
}

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        (640, 420)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let tx = |x: f64| if self.log2_x { x.log2() } else { x };
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let xr = padded_range(all().map(|p| tx(p.0)));
        let yr = padded_range(self.series.iter().flat_map(|s| {
            s.points.iter().enumerate().flat_map(|(i, p)| {
                let e = s.errors.get(i).copied().unwrap_or(0.0);
                [p.1 - e, p.1 + e]
            })
        }));
        // Head room for the legend (upper right), so that no point lies under it.
        let yr = yr.start..yr.end + legend_headroom(self.series.len()) * (yr.end - yr.start);
        let x_ticks = if self.log2_x {
            (xr.end.floor() - xr.start.ceil()) as usize + 1
        } else {
            8
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xr, yr)?;
        let log2 = self.log2_x;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 12))
            .x_labels(x_ticks)
            .light_line_style(WHITE.mix(0.0))
            .x_label_formatter(&|x| {
                if !log2 {
                    format!("{x:.2}")
                } else if (x - x.round()).abs() < 1e-6 {
                    format!("{}", 2f64.powf(x.round()))
                } else {
                    String::new()
                }
            })
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (tx(x), y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(&s.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            if !s.errors.is_empty() {
                chart.draw_series(pts.iter().zip(&s.errors).map(|(&(x, y), &e)| {
                    ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(1), 8)
                }))?;
            }
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 12, 0.85)
    }
}

/// One panel of a [`Scatter`]: points with a class index into `classes`, and optionally one anchor per
/// class (drawn as a large outlined cross).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScatterPanel {
    pub title: String,
    pub points: Vec<(f64, f64, usize)>,
    pub anchors: Vec<(f64, f64)>,
}

/// Point clouds, one panel each, side by side, coloured by class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scatter {
    pub classes: Vec<String>,
    pub panels: Vec<ScatterPanel>,
    pub x_label: String,
    pub y_label: String,
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (460 * self.panels.len().max(1) as u32, 460)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Res
    where
        DB::ErrorType: 'static,
    {
        let cells = area.split_evenly((1, self.panels.len().max(1)));
        for (panel, cell) in self.panels.iter().zip(cells) {
            let xs = panel
                .points
                .iter()
                .map(|p| p.0)
                .chain(panel.anchors.iter().map(|a| a.0));
            let ys = panel
                .points
                .iter()
                .map(|p| p.1)
                .chain(panel.anchors.iter().map(|a| a.1));
            let (xr, yr) = (padded_range(xs), padded_range(ys));
            let mut chart = ChartBuilder::on(&cell)
                .caption(&panel.title, (FONT, 16))
                .margin(10)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(xr, yr)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style((FONT, 11))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (k, name) in self.classes.iter().enumerate() {
                let color = PALETTE[k % PALETTE.len()];
                chart
                    .draw_series(
                        panel
                            .points
                            .iter()
                            .filter(|p| p.2 == k)
                            .map(|p| Circle::new((p.0, p.1), 2, color.mix(0.6).filled())),
                    )?
                    .label(name)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
                if let Some(&anchor) = panel.anchors.get(k) {
                    chart.draw_series(std::iter::once(Cross::new(
                        anchor,
                        9,
                        color.stroke_width(4),
                    )))?;
                    chart.draw_series(std::iter::once(Cross::new(
                        anchor,
                        9,
                        BLACK.stroke_width(1),
                    )))?;
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 12, 0.85)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqls_eval::calibration::calibration;

    /// The numbers of the attributes `names` of every `<tag …>` element of an SVG text.
    fn elements(svg: &str, tag: &str, names: &[&str]) -> Vec<Vec<f64>> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .map(|e| {
                names
                    .iter()
                    .map(|n| {
                        let e = format!(" {e}");
                        let v = e.split(&format!(" {n}=\"")).nth(1).unwrap();
                        v[..v.find('"').unwrap()].parse().unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn no_point_lies_under_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        for rows in 1..=8 {
            // Every series rises to the top at the right edge, where the legend is.
            let series = (0..rows)
                .map(|i| Series {
                    label: format!("a series named {i}"),
                    points: vec![(0.0, 20.0 + i as f64), (0.2, 30.0 - 0.1 * i as f64)],
                    errors: vec![],
                })
                .collect();
            let chart = LineChart {
                title: "t".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                series,
                log2_x: false,
            };
            let [_, svg] = save(&chart, &dir.path().join(format!("c{rows}"))).unwrap();
            let svg = std::fs::read_to_string(svg).unwrap();
            let legend = elements(&svg, "rect", &["x", "y", "width", "height"])
                .into_iter()
                .find(|r| r[0] > 0.0)
                .expect("a legend box");
            let points = elements(&svg, "circle", &["cx", "cy", "r"]);
            assert!(points.len() >= 2 * rows, "{rows} rows");
            for p in points {
                let inside_x = p[0] + p[2] >= legend[0] && p[0] - p[2] <= legend[0] + legend[2];
                let inside_y = p[1] + p[2] >= legend[1] && p[1] - p[2] <= legend[1] + legend[3];
                assert!(
                    !(inside_x && inside_y),
                    "{rows} rows: point {p:?} under {legend:?}"
                );
            }
        }
    }

    #[test]
    fn every_figure_writes_a_png_and_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let conf = [0.95, 0.9, 0.55, 0.6, 0.3, 0.99, 0.8];
        let ok = [true, true, false, true, false, true, false];
        let cal = calibration(&conf, &ok, 10);
        let one = Reliability {
            title: "α = 0".into(),
            calibration: &cal,
        };
        let grid = ReliabilityGrid {
            panels: vec![
                Reliability {
                    title: "a".into(),
                    calibration: &cal,
                },
                Reliability {
                    title: "b".into(),
                    calibration: &cal,
                },
                Reliability {
                    title: "c".into(),
                    calibration: &cal,
                },
            ],
            columns: 2,
        };
        let lines = LineChart {
            title: "BLEU vs beam".into(),
            x_label: "beam".into(),
            y_label: "BLEU".into(),
            series: vec![Series {
                label: "α = 0.1".into(),
                points: vec![(1.0, 30.0), (2.0, 31.0), (4.0, 31.5)],
                errors: vec![0.5, 0.2, 0.4],
            }],
            log2_x: true,
        };
        let scatter = Scatter {
            classes: vec!["the".into(), "a".into()],
            panels: vec![ScatterPanel {
                title: "α = 0".into(),
                points: vec![(0.0, 1.0, 0), (1.0, 0.5, 1)],
                anchors: vec![(0.0, 0.0), (1.0, 0.0)],
            }],
            x_label: "e1".into(),
            y_label: "e2".into(),
        };
        for (name, paths) in [
            ("one", save(&one, &dir.path().join("one")).unwrap()),
            ("grid", save(&grid, &dir.path().join("grid")).unwrap()),
            ("lines", save(&lines, &dir.path().join("lines")).unwrap()),
            (
                "scatter",
                save(&scatter, &dir.path().join("scatter")).unwrap(),
            ),
        ] {
            let png = std::fs::read(&paths[0]).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{name}");
            let svg = std::fs::read_to_string(&paths[1]).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("<text"), "{name}");
        }
        let svg = std::fs::read_to_string(dir.path().join("one.svg")).unwrap();
        assert!(svg.contains(&format!("ECE {:.4}", cal.ece)));
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 8);
    }
}
