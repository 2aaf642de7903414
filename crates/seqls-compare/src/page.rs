//! One self-contained HTML page: optionally a study's report (its Markdown rendered, each figure's
//! SVG inlined), then per test set the comparison tables of [`crate::compare`] with a bar chart, and a
//! sentence explorer (source, reference and every system's output side by side, each output word
//! shaded by its probability, with filters and sorting). No server, no network, no framework: the
//! data sits in the page as JSON and `page.js` (plain DOM code) draws the explorer from it.

use crate::bootstrap::Delta;
use crate::sentences::DIFF_LABELS;
use crate::{Comparison, Inputs};
use pulldown_cmark::{Event, Options as MdOptions, Parser, Tag, TagEnd};
use std::fmt::Write as _;
use std::path::Path;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");
/// One colour per system, in order (then repeated).
const COLOURS: [&str; 6] = [
    "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377",
];

/// One test set's comparison and what it compared.
pub struct Section<'a> {
    pub title: String,
    pub comparison: &'a Comparison,
    pub inputs: &'a Inputs,
}

/// What the page shows.
pub struct Page<'a> {
    pub title: String,
    /// A study's `report.md`, and the directory its figure paths are relative to.
    pub report: Option<(&'a str, &'a Path)>,
    /// Sentences about what the page does not show, and why.
    pub notes: Vec<String>,
    pub sections: Vec<Section<'a>>,
}

/// `&`, `<`, `>`, `"` and `'` as HTML entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The report's Markdown as HTML, with every `figures/*.png` image replaced by its SVG sibling's
/// markup (left as a link where the SVG is missing).
fn report_html(markdown: &str, dir: &Path) -> String {
    let parser = Parser::new_ext(markdown, MdOptions::ENABLE_TABLES);
    let mut events = Vec::new();
    let mut skipping = false;
    for event in parser {
        match &event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                let svg = dir.join(dest_url.as_ref()).with_extension("svg");
                if let Ok(text) = std::fs::read_to_string(&svg) {
                    let start = text.find("<svg").unwrap_or(0);
                    events.push(Event::Html(
                        format!("<figure>{}</figure>", &text[start..]).into(),
                    ));
                    skipping = true;
                    continue;
                }
            }
            Event::End(TagEnd::Image) if skipping => {
                skipping = false;
                continue;
            }
            _ if skipping => continue,
            _ => {}
        }
        events.push(event);
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

fn delta_cell(d: &Delta, decimals: usize) -> String {
    let class = if d.detected() { " class=\"sig\"" } else { "" };
    format!(
        "<td{class}>{:+.decimals$} [{:+.decimals$}, {:+.decimals$}]</td>",
        d.observed, d.ci.0, d.ci.1
    )
}

/// A grouped bar chart: one group per label, one bar per series (values in [0, `max`]).
fn bar_chart(labels: &[String], series: &[(String, Vec<f64>)], max: f64, y_title: &str) -> String {
    let (w, h, left, bottom, top) = (720.0, 260.0, 50.0, 40.0, 24.0);
    let plot_h = h - bottom - top;
    let group = (w - left - 10.0) / labels.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">"
    );
    for t in 0..=4 {
        let v = max * t as f64 / 4.0;
        let y = top + plot_h * (1.0 - v / max);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{v:.2}</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for (g, label) in labels.iter().enumerate() {
        let x0 = left + group * g as f64 + group * 0.1;
        for (s, (name, values)) in series.iter().enumerate() {
            let v = values[g].clamp(0.0, max);
            let bh = plot_h * v / max;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{}\">\
                 <title>{} {}: {v:.3}</title></rect>",
                x0 + bar * s as f64,
                top + plot_h - bh,
                COLOURS[s % COLOURS.len()],
                escape(name),
                escape(label)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            x0 + group * 0.4,
            h - bottom + 14.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{:.1}\" font-size=\"11\" transform=\"rotate(-90 12 {:.1})\" \
         text-anchor=\"middle\">{}</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_title)
    );
    for (s, (name, _)) in series.iter().enumerate() {
        let x = left + 10.0 + 110.0 * s as f64;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"13\" font-size=\"11\">{}</text>",
            COLOURS[s % COLOURS.len()],
            x + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn header(html: &mut String, first: &str, c: &Comparison, contrasts: bool) {
    let _ = write!(html, "<tr><th>{first}</th>");
    for s in &c.systems {
        let _ = write!(html, "<th>{}</th>", escape(s));
    }
    if contrasts {
        for x in &c.contrasts {
            let _ = write!(
                html,
                "<th>Δ {} − {} [95%]</th>",
                escape(&c.systems[x.system]),
                escape(&c.systems[x.baseline])
            );
        }
    }
    html.push_str("</tr>");
}

fn section_html(html: &mut String, id: usize, section: &Section) {
    let c = section.comparison;
    let _ = write!(
        html,
        "<section id=\"compare-{id}\"><h2>What changed: {}</h2><p>{} sentences; the first system is \
         the baseline of every Δ. Highlighted Δ: the paired bootstrap's 95% interval excludes zero and \
         p &lt; 0.05 (1,000 resamples of the sentences, not adjusted for the number of buckets).</p>",
        escape(&section.title),
        c.sentences
    );
    html.push_str(
        "<h3>Corpus</h3><table><tr><th>system</th><th>BLEU</th><th>length ratio</th>\
                   <th>search errors (exact subset)</th><th>empty optima</th></tr>",
    );
    for (s, name) in c.systems.iter().enumerate() {
        let (errors, empty) = match &c.search[s] {
            Some(x) => (
                format!("{} of {}", x.search_errors, x.sentences),
                format!("{} of {}", x.empty_optima, x.sentences),
            ),
            None => ("—".into(), "—".into()),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.3}</td><td>{errors}</td><td>{empty}</td></tr>",
            escape(name),
            c.corpus[s].bleu,
            c.corpus[s].length_ratio
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h3>Word F-measure by training frequency</h3><p>compare-mt's word accuracy: whitespace \
         words, bucketed by their count in the training targets.</p>",
    );
    let series: Vec<(String, Vec<f64>)> = c
        .systems
        .iter()
        .zip(&c.word_accuracy)
        .map(|(n, w)| (n.clone(), w.iter().map(|b| b.f_measure).collect()))
        .collect();
    html.push_str(&bar_chart(&c.frequency_buckets, &series, 1.0, "F-measure"));
    html.push_str("<table class=\"freq\">");
    header(html, "frequency (reference words)", c, true);
    for (b, label) in c.frequency_buckets.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td>{} ({})</td>",
            escape(label),
            c.reference_words[b]
        );
        let empty = c
            .word_accuracy
            .iter()
            .all(|w| w[b].reference + w[b].output == 0);
        for w in &c.word_accuracy {
            let _ = write!(html, "<td>{:.4}</td>", w[b].f_measure);
        }
        for x in &c.contrasts {
            html.push_str(&if empty {
                "<td>—</td>".to_string()
            } else {
                delta_cell(&x.f_measure[b], 4)
            });
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");

    if c.word_confidence.iter().any(Option::is_some) {
        html.push_str(
            "<h3>Word confidence by training frequency</h3><p>The probability the model gave each \
             output word (product of its subword probabilities) against whether it matched the \
             reference: mean confidence / accuracy / ECE (15 bins), and the words counted.</p><table>",
        );
        header(html, "frequency", c, false);
        for (b, label) in c.frequency_buckets.iter().enumerate() {
            let _ = write!(html, "<tr><td>{}</td>", escape(label));
            for conf in &c.word_confidence {
                match conf {
                    Some(conf) if conf[b].words > 0 => {
                        let x = &conf[b];
                        let _ = write!(
                            html,
                            "<td>{:.3} / {:.3} / <b>{:.3}</b> ({})</td>",
                            x.mean_confidence, x.accuracy, x.ece, x.words
                        );
                    }
                    _ => html.push_str("<td>—</td>"),
                }
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
    }

    html.push_str("<h3>BLEU by reference length (words)</h3><table>");
    header(html, "length (sentences)", c, true);
    for (b, label) in c.length_buckets.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td>{} ({})</td>",
            escape(label),
            c.length[0][b].sentences
        );
        if c.length[0][b].sentences == 0 {
            let cells = c.systems.len() + c.contrasts.len();
            html.push_str(&"<td>—</td>".repeat(cells));
            html.push_str("</tr>");
            continue;
        }
        for l in &c.length {
            let _ = write!(
                html,
                "<td>{:.2} (×{:.3})</td>",
                l[b].bleu, l[b].length_ratio
            );
        }
        for x in &c.contrasts {
            html.push_str(&delta_cell(&x.length_bleu[b], 1));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table><p>Each cell: BLEU (length ratio).</p>");

    html.push_str("<h3>Sentence-BLEU differences</h3><table><tr><th>Δ sentence BLEU</th>");
    for x in &c.contrasts {
        let _ = write!(
            html,
            "<th>{} − {}</th>",
            escape(&c.systems[x.system]),
            escape(&c.systems[x.baseline])
        );
    }
    html.push_str("</tr>");
    for (b, label) in DIFF_LABELS.iter().enumerate() {
        let _ = write!(html, "<tr><td>{label}</td>");
        for x in &c.contrasts {
            let _ = write!(html, "<td>{}</td>", x.sentence_bleu_diff[b]);
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");

    for x in &c.contrasts {
        let (sys, base) = (escape(&c.systems[x.system]), escape(&c.systems[x.baseline]));
        let _ = write!(
            html,
            "<h3>N-grams: {sys} vs {base}</h3><p>Matched in the references more often by one system \
             (compare-mt's salience (m₁ + 1) / (m₁ + m₂ + 2)).</p><div class=\"pair\">"
        );
        for (title, list) in [(&sys, &x.ngrams_more), (&base, &x.ngrams_fewer)] {
            let _ = write!(
                html,
                "<table><tr><th>more by {title}</th><th>{sys}</th><th>{base}</th></tr>"
            );
            for g in list {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&g.ngram),
                    g.system,
                    g.baseline
                );
            }
            html.push_str("</table>");
        }
        html.push_str("</div>");
        let _ = write!(
            html,
            "<h3>Largest sentence-BLEU changes: {sys} vs {base}</h3><table>"
        );
        let _ = write!(
            html,
            "<tr><th>#</th><th>reference</th><th>{base}</th><th>{sys}</th><th>Δ</th></tr>"
        );
        for &i in x.most_improved.iter().chain(&x.most_degraded) {
            let (b, s) = (c.sentence_bleu[x.baseline][i], c.sentence_bleu[x.system][i]);
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:+.1}</td></tr>",
                i + 1,
                escape(&section.inputs.references[i]),
                escape(&section.inputs.systems[x.baseline].outputs[i]),
                escape(&section.inputs.systems[x.system].outputs[i]),
                s - b
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</section>");
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The explorer's data: per section, the texts, probabilities, sentence BLEU and flags.
fn explorer_data(sections: &[Section]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = sections
        .iter()
        .map(|s| {
            let c = s.comparison;
            serde_json::json!({
                "title": s.title,
                "systems": c.systems,
                "sources": s.inputs.sources,
                "references": s.inputs.references,
                "outputs": s.inputs.systems.iter().map(|x| &x.outputs).collect::<Vec<_>>(),
                "probs": s.inputs.systems.iter().map(|x| x.word_probs.as_ref().map(|p| {
                    p.iter().map(|l| l.iter().map(|&v| round(v, 3)).collect::<Vec<_>>()).collect::<Vec<_>>()
                })).collect::<Vec<_>>(),
                "bleu": c.sentence_bleu.iter().map(|b| b.iter().map(|&v| round(v, 1)).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "flags": s.inputs.systems.iter().map(|x| x.search.as_ref().map(|f| {
                    f.iter().map(|f| f.map(|f| [u8::from(f.search_error), u8::from(f.empty_optimum)])).collect::<Vec<_>>()
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The page as one HTML document.
pub fn render(page: &Page) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>\
         <div id=\"errors\" hidden></div><nav>",
        escape(&page.title),
        escape(&page.title)
    );
    if !page.sections.is_empty() {
        html.push_str("<a href=\"#explorer\">sentence explorer</a>");
    }
    for (i, s) in page.sections.iter().enumerate() {
        let _ = write!(
            html,
            " · <a href=\"#compare-{i}\">what changed: {}</a>",
            escape(&s.title)
        );
    }
    if page.report.is_some() {
        html.push_str(" · <a href=\"#report\">report</a>");
    }
    html.push_str("</nav>");
    for note in &page.notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    if !page.sections.is_empty() {
        html.push_str(
            "<section id=\"explorer\"><h2>Sentence explorer</h2><div class=\"controls\">\
             <label>test set <select id=\"split\"></select></label> \
             <label>show <select id=\"filter\"><option value=\"all\">all sentences</option>\
             <option value=\"differ\">outputs differ</option>\
             <option value=\"search-error\">search error (any system)</option>\
             <option value=\"empty-optimum\">empty optimum (any system)</option></select></label> \
             <label>sort by <select id=\"sort\"></select></label> \
             <label>rows <select id=\"limit\"><option>100</option><option>500</option>\
             <option value=\"0\">all</option></select></label> \
             <span id=\"shown\"></span></div>\
             <p>Each output word is shaded by the probability the model gave it (white: 1, red: 0; \
             hover for the value); ⚠ marks a search error, ∅ an empty optimum (exact search, on the \
             search analysis's subset).</p><table id=\"sentences\"></table></section>",
        );
    }
    for (i, s) in page.sections.iter().enumerate() {
        section_html(&mut html, i, s);
    }
    if let Some((markdown, dir)) = page.report {
        let _ = write!(
            html,
            "<section id=\"report\">{}</section>",
            report_html(markdown, dir)
        );
    }
    let data = explorer_data(&page.sections)
        .to_string()
        .replace("</", "<\\/");
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"data\">{data}</script><script>{SCRIPT}</script>\
         </body></html>"
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn report_figures_are_inlined_where_their_svg_exists() {
        let dir = std::env::temp_dir().join(format!("seqls-page-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("figures")).unwrap();
        std::fs::write(
            dir.join("figures/a.svg"),
            "<?xml version=\"1.0\"?>\n<svg id=\"a\"></svg>",
        )
        .unwrap();
        let html = report_html(
            "# R\n\n![A](figures/a.png)\n\n![B](figures/b.png)\n\n| x |\n|---|\n| 1 |\n",
            &dir,
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            html.contains("<figure><svg id=\"a\"></svg></figure>"),
            "{html}"
        );
        assert!(!html.contains("<?xml"), "{html}");
        assert!(
            html.contains("<img src=\"figures/b.png\" alt=\"B\""),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
    }
}
