//! Bar charts as inline SVG (no script, nothing loaded): one group of bars
//! per label, one bar per series, the highest value at the top, each bar
//! with its value as a tooltip.

use maud::{Markup, html};

/// One series: its name, its colour, one value per label.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<i64>,
}

const HEIGHT: i64 = 160;
const BAR: i64 = 10;

/// The chart of `series` over `labels`; `marked[i]` draws label `i` in red
/// (a day that does not balance, say).
pub fn bars(labels: &[String], series: &[Series<'_>], marked: &[bool]) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let group = BAR * series.len() as i64 + 6;
    let width = group * labels.len() as i64 + 50;
    html! {
        svg width=(width) height=(HEIGHT + 40) role="img" xmlns="http://www.w3.org/2000/svg" {
            text x="0" y="12" font-size="11" { (max) }
            line x1="40" y1=(HEIGHT + 20) x2=(width) y2=(HEIGHT + 20) stroke="#888" {}
            @for (i, label) in labels.iter().enumerate() {
                @let x0 = 44 + group * i as i64;
                @for (k, s) in series.iter().enumerate() {
                    @let v = s.values.get(i).copied().unwrap_or(0);
                    @let h = v * HEIGHT / max;
                    rect x=(x0 + BAR * k as i64) y=(HEIGHT + 20 - h) width=(BAR - 1) height=(h) fill=(s.colour) {
                        title { (label) " " (s.name) "：" (v) }
                    }
                }
                @if i % 2 == 0 || labels.len() <= 14 {
                    text x=(x0) y=(HEIGHT + 34) font-size="10"
                        fill=(if marked.get(i).copied().unwrap_or(false) { "#b00" } else { "#333" }) { (label) }
                }
            }
        }
        p.note {
            @for s in series { span style=(format!("color:{}", s.colour)) { "■ " } (s.name) "　" }
        }
    }
}
