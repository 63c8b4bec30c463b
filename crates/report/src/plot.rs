//! Grouped bar charts (PNG and SVG) of the tables: one group of bars per dataset, one
//! bar per method, error bars of ±1 population std over seeds, and the paper's value as
//! a black diamond on the bar of its method.
//!
//! Text is drawn with DejaVu Sans embedded in the crate (`assets/DejaVuSans.ttf`,
//! licence next to it) and registered with plotters' `ab_glyph` renderer, so PNGs
//! render the same on a headless machine without any system font. The SVGs name the
//! family `sans-serif` and are drawn with the viewer's fonts.

use std::path::Path;
use std::sync::OnceLock;

use image::ImageEncoder as _;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::error::{PlotError, ReportError, Result};
use crate::names::dataset_short_label;
use crate::tables::{BaseToNovelTable, TransferTable};

/// DejaVu Sans 2.37 (see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family every text style uses; the embedded font is registered under it.
const FAMILY: &str = "sans-serif";

/// Registers the embedded font once; the outcome is remembered.
fn register_font() -> std::result::Result<(), PlotError> {
    static DONE: OnceLock<std::result::Result<(), PlotError>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| PlotError::Font)
    })
    .clone()
}

/// Tableau 10: distinct, colour-blind-friendly series colours.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(89, 161, 79),
    RGBColor(225, 87, 89),
    RGBColor(176, 122, 161),
    RGBColor(118, 183, 178),
    RGBColor(237, 201, 72),
    RGBColor(156, 117, 95),
    RGBColor(255, 157, 167),
    RGBColor(186, 176, 172),
];

/// One bar.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bar {
    /// Height, % (none: no bar).
    pub value: Option<f64>,
    /// Population std over seeds, % (drawn when positive).
    pub std: Option<f64>,
    /// The paper's value, % (a diamond).
    pub paper: Option<f64>,
}

/// One chart of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption.
    pub title: String,
    /// `bars[group][series]`.
    pub bars: Vec<Vec<Bar>>,
}

/// A figure: panels stacked vertically sharing groups, series and legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title on top.
    pub title: String,
    /// Legend labels, one per series.
    pub series: Vec<String>,
    /// Group (x-axis) labels.
    pub groups: Vec<String>,
    /// The charts.
    pub panels: Vec<Panel>,
    /// Legend label of the paper's diamonds, when any is drawn.
    pub paper_label: Option<String>,
}

impl Figure {
    fn has_error_bars(&self) -> bool {
        self.panels
            .iter()
            .flat_map(|p| p.bars.iter().flatten())
            .any(|b| b.std.is_some_and(|s| s > 0.0))
    }

    fn group_width(&self) -> u32 {
        (self.series.len() as u32 * 30 + 30).max(96)
    }

    /// Pixel size.
    pub fn size(&self) -> (u32, u32) {
        let w = self.size_w_only();
        let h = TITLE_H + self.legend_height() + self.panels.len() as u32 * PANEL_H + 10;
        (w, h)
    }

    fn legend_entries(&self) -> Vec<(String, LegendIcon)> {
        let mut e: Vec<(String, LegendIcon)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), LegendIcon::Box(PALETTE[i % PALETTE.len()])))
            .collect();
        if self.has_error_bars() {
            e.push(("±1 std over seeds".into(), LegendIcon::ErrorBar));
        }
        if let Some(p) = &self.paper_label {
            e.push((p.clone(), LegendIcon::Diamond));
        }
        e
    }

    fn legend_height(&self) -> u32 {
        // Entries are laid out on lines as wide as the plot; estimate with the font's
        // average advance (~0.6 em) so the height is known before drawing.
        let width = (self.size_w_only() - Y_AREA - 20) as f64;
        let mut lines = 1;
        let mut x = 0.0;
        for (label, _) in self.legend_entries() {
            let w = 34.0 + label.chars().count() as f64 * LEGEND_FONT as f64 * 0.6 + 26.0;
            if x + w > width && x > 0.0 {
                lines += 1;
                x = 0.0;
            }
            x += w;
        }
        lines * 30 + 14
    }

    fn size_w_only(&self) -> u32 {
        // Wide enough for the bars and for the title (DejaVu Sans averages ~0.58 em).
        let title = (self.title.chars().count() as f64 * TITLE_FONT as f64 * 0.58) as u32 + 60;
        (Y_AREA + 40 + self.groups.len() as u32 * self.group_width())
            .max(900)
            .max(title)
    }
}

#[derive(Debug, Clone, Copy)]
enum LegendIcon {
    Box(RGBColor),
    ErrorBar,
    Diamond,
}

const TITLE_H: u32 = 56;
const TITLE_FONT: u32 = 26;
const PANEL_H: u32 = 340;
const Y_AREA: u32 = 78;
const LEGEND_FONT: u32 = 18;

/// The base-to-novel figure: panels base, novel and HM; a group per dataset and one for
/// the average when there are averages.
pub fn base_to_novel_figure(t: &BaseToNovelTable) -> Figure {
    let mut groups: Vec<String> = t.datasets.iter().map(|d| dataset_short_label(d)).collect();
    if !t.averages.is_empty() {
        groups.push("Average".into());
    }
    let panel = |title: &str, pick: &dyn Fn(usize, usize) -> Bar| Panel {
        title: title.into(),
        bars: (0..groups.len())
            .map(|g| (0..t.series.len()).map(|s| pick(g, s)).collect())
            .collect(),
    };
    // which: 0 base, 1 novel, 2 HM.
    let bar = |which: usize, g: usize, s: usize| -> Bar {
        let series = &t.series[s];
        if g < t.datasets.len() {
            let Some(r) = t
                .rows
                .iter()
                .find(|r| r.dataset == t.datasets[g] && r.series == *series)
            else {
                return Bar::default();
            };
            let (stat, hm) = match which {
                0 => (r.base.as_ref(), None),
                1 => (r.novel.as_ref(), None),
                _ => (None, r.hm),
            };
            Bar {
                value: stat.map(|s| s.mean).or(hm),
                std: stat.filter(|s| s.values.len() > 1).map(|s| s.std),
                paper: r
                    .paper
                    .as_ref()
                    .map(|p| [p.base, p.novel, p.hm][which.min(2)]),
            }
        } else {
            let Some(a) = t.averages.iter().find(|a| a.series == *series) else {
                return Bar::default();
            };
            Bar {
                value: Some([a.base, a.novel, a.hm][which.min(2)]),
                std: None,
                paper: a
                    .paper
                    .as_ref()
                    .map(|p| [p.base, p.novel, p.hm][which.min(2)]),
            }
        }
    };
    let any_paper =
        t.rows.iter().any(|r| r.paper.is_some()) || t.averages.iter().any(|a| a.paper.is_some());
    Figure {
        title: "Base-to-novel generalisation: accuracy per dataset (mean over seeds)".into(),
        series: t.series.iter().map(|s| s.label.clone()).collect(),
        panels: vec![
            panel("Base classes", &|g, s| bar(0, g, s)),
            panel("Novel classes", &|g, s| bar(1, g, s)),
            panel("Harmonic mean of base and novel (HM)", &|g, s| bar(2, g, s)),
        ],
        groups,
        paper_label: any_paper.then(|| "value published in the paper".to_string()),
    }
}

/// A transfer figure: one panel, a group per dataset and one for the target average.
pub fn transfer_figure(t: &TransferTable, title: &str) -> Figure {
    let is_source = |d: &str| t.source.as_deref() == Some(d);
    let mut groups: Vec<String> = t
        .datasets
        .iter()
        .map(|d| {
            if is_source(d) {
                format!("{} (src)", dataset_short_label(d))
            } else {
                dataset_short_label(d)
            }
        })
        .collect();
    let with_avg = t.rows.iter().any(|r| r.target_average.is_some());
    if with_avg {
        groups.push("Target avg".into());
    }
    let bars = (0..groups.len())
        .map(|g| {
            t.rows
                .iter()
                .map(|r| {
                    let paper = t.paper.iter().find(|p| p.method == r.series.method);
                    if g < t.datasets.len() {
                        let d = &t.datasets[g];
                        let st = r.accuracy.get(d);
                        Bar {
                            value: st.map(|s| s.mean),
                            std: st.filter(|s| s.values.len() > 1).map(|s| s.std),
                            paper: paper.and_then(|p| p.accuracy.get(d).copied()),
                        }
                    } else {
                        Bar {
                            value: r.target_average,
                            std: None,
                            paper: paper.and_then(|p| p.target_average),
                        }
                    }
                })
                .collect()
        })
        .collect();
    Figure {
        title: format!("{title}: accuracy per dataset (mean over seeds)"),
        series: t.rows.iter().map(|r| r.series.label.clone()).collect(),
        groups,
        panels: vec![Panel {
            title: "All classes".into(),
            bars,
        }],
        paper_label: (!t.paper.is_empty()).then(|| "value published in the paper".to_string()),
    }
}

/// The x axis of grouped bars: group `i` is centred on `i`, ticks only at group centres.
struct GroupAxis {
    inner: RangedCoordf64,
    groups: usize,
}

impl GroupAxis {
    /// `groups` groups, with `pad` empty group widths added on each side.
    fn new(groups: usize, pad: f64) -> Self {
        GroupAxis {
            inner: (-0.5 - pad..groups as f64 - 0.5 + pad).into(),
            groups,
        }
    }
}

impl Ranged for GroupAxis {
    type ValueType = f64;
    type FormatOption = NoDefaultFormatting;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points are the group centres; no light mesh lines.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.groups).map(|i| i as f64).collect()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for GroupAxis {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// A plotters error (generic over the backend, so kept as its text).
fn err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw {
        message: format!("{e:?}"),
    }
}

/// Draws `fig` on any plotters backend.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> std::result::Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let title_style = TextStyle::from((FAMILY, TITLE_FONT).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        fig.title.clone(),
        (w as i32 / 2, TITLE_H as i32 / 2),
        title_style,
    ))
    .map_err(err)?;
    let (_, rest) = root.split_vertically(TITLE_H);
    let (legend, charts) = rest.split_vertically(fig.legend_height());
    draw_legend(&legend, fig)?;

    let n = fig.groups.len();
    let s_count = fig.series.len().max(1);
    // A figure wider than its groups need (title, minimum width) pads the x axis so
    // that a group is at most twice its natural width instead of stretching.
    let plot_px = w.saturating_sub(Y_AREA + 30) as f64;
    let pad = ((plot_px / (2.0 * fig.group_width() as f64) - n as f64) / 2.0).max(0.0);
    let panels = charts.split_evenly((fig.panels.len(), 1));
    for (k, (area, panel)) in panels.iter().zip(&fig.panels).enumerate() {
        let last = k + 1 == fig.panels.len();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 21).into_font())
            .margin_left(6)
            .margin_right(24)
            .margin_top(4)
            .x_label_area_size(if last { 56 } else { 34 })
            .y_label_area_size(Y_AREA)
            .build_cartesian_2d(GroupAxis::new(n, pad), 0f64..100f64)
            .map_err(err)?;
        let groups = fig.groups.clone();
        let x_label = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                groups.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let y_label = |v: &f64| format!("{v:.0}");
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .y_max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .y_labels(11)
            .y_label_formatter(&y_label)
            .x_label_formatter(&x_label)
            .label_style((FAMILY, 16).into_font())
            .axis_desc_style((FAMILY, 18).into_font())
            .y_desc("Accuracy (%)");
        if last {
            mesh.x_desc("Dataset");
        }
        mesh.draw().map_err(err)?;

        let slot = 0.8 / s_count as f64;
        for (g, bars) in panel.bars.iter().enumerate() {
            for (s, bar) in bars.iter().enumerate() {
                let x0 = g as f64 - 0.4 + s as f64 * slot + slot * 0.06;
                let x1 = x0 + slot * 0.88;
                let xc = (x0 + x1) / 2.0;
                let color = PALETTE[s % PALETTE.len()];
                if let Some(v) = bar.value {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, 0.0), (x1, v.clamp(0.0, 100.0))],
                            color.filled(),
                        )))
                        .map_err(err)?;
                    if let Some(sd) = bar.std.filter(|sd| *sd > 0.0) {
                        let (lo, hi) = ((v - sd).max(0.0), (v + sd).min(100.0));
                        let cap = slot * 0.12;
                        let style = RGBColor(40, 40, 40).stroke_width(2);
                        chart
                            .draw_series([
                                PathElement::new(vec![(xc, lo), (xc, hi)], style),
                                PathElement::new(vec![(xc - cap, lo), (xc + cap, lo)], style),
                                PathElement::new(vec![(xc - cap, hi), (xc + cap, hi)], style),
                            ])
                            .map_err(err)?;
                    }
                }
                // The paper's value marks one of our bars; without a bar it would float.
                if let Some(p) = bar.paper.filter(|_| bar.value.is_some()) {
                    let at = (xc, p.clamp(0.0, 100.0));
                    chart
                        .draw_series([
                            EmptyElement::at(at) + Polygon::new(diamond(6), WHITE.filled())
                        ])
                        .map_err(err)?;
                    chart
                        .draw_series([EmptyElement::at(at)
                            + PathElement::new(closed(diamond(6)), BLACK.stroke_width(2))])
                        .map_err(err)?;
                }
            }
        }
    }
    root.present().map_err(err)
}

/// A polygon's outline as a closed path.
fn closed(mut points: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    if let Some(&first) = points.first() {
        points.push(first);
    }
    points
}

fn diamond(r: i32) -> Vec<(i32, i32)> {
    vec![(0, -r), (r, 0), (0, r), (-r, 0)]
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> std::result::Result<(), PlotError> {
    let style = TextStyle::from((FAMILY, LEGEND_FONT).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (w, _) = area.dim_in_pixel();
    let left = Y_AREA as i32 + 6;
    let (mut x, mut y) = (left, 20);
    for (label, icon) in fig.legend_entries() {
        let (tw, _) = area.estimate_text_size(&label, &style).map_err(err)?;
        let item = 34 + tw as i32 + 26;
        if x + item > w as i32 - 10 && x > left {
            x = left;
            y += 30;
        }
        match icon {
            LegendIcon::Box(c) => {
                area.draw(&Rectangle::new([(x, y - 9), (x + 24, y + 9)], c.filled()))
                    .map_err(err)?;
            }
            LegendIcon::ErrorBar => {
                let st = RGBColor(40, 40, 40).stroke_width(2);
                for seg in [
                    vec![(x + 12, y - 10), (x + 12, y + 10)],
                    vec![(x + 7, y - 10), (x + 17, y - 10)],
                    vec![(x + 7, y + 10), (x + 17, y + 10)],
                ] {
                    area.draw(&PathElement::new(seg, st)).map_err(err)?;
                }
            }
            LegendIcon::Diamond => {
                let pts: Vec<(i32, i32)> = diamond(7)
                    .into_iter()
                    .map(|(dx, dy)| (x + 12 + dx, y + dy))
                    .collect();
                area.draw(&Polygon::new(pts.clone(), WHITE.filled()))
                    .map_err(err)?;
                area.draw(&PathElement::new(closed(pts), BLACK.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        area.draw(&Text::new(label, (x + 32, y), style.clone()))
            .map_err(err)?;
        x += item;
    }
    Ok(())
}

/// Draws `fig` as a PNG file's bytes. `path` names the file in errors.
pub fn png(fig: &Figure, path: &Path) -> Result<Vec<u8>> {
    let fail = |source: PlotError| ReportError::Plot {
        path: path.to_path_buf(),
        source,
    };
    register_font().map_err(fail)?;
    let (w, h) = fig.size();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root, fig).map_err(fail)?;
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&buf, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| {
            fail(PlotError::EncodePng {
                message: e.to_string(),
            })
        })?;
    Ok(out)
}

/// Draws `fig` as an SVG document. `path` names the file in errors.
pub fn svg(fig: &Figure, path: &Path) -> Result<String> {
    let fail = |source: PlotError| ReportError::Plot {
        path: path.to_path_buf(),
        source,
    };
    // Text layout (anchors, label areas) is measured with the same font.
    register_font().map_err(fail)?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, fig.size()).into_drawing_area();
        draw(&root, fig).map_err(fail)?;
    }
    Ok(out)
}
