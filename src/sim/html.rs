//! The report as one HTML page that opens offline: inline CSS and SVG, no scripts, no
//! external assets. Charts: the answer-time distribution against the target line per
//! model, home-care load per hour of day, and cost against compliance per model.

use std::fmt::Write as _;

use super::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"];

fn models(r: &Report) -> Vec<String> {
    let mut m: Vec<String> = r.rows.iter().map(|x| x.model.clone()).collect();
    m.dedup();
    m
}

/// Cumulative share answered by time (log-scaled seconds), one line per model.
fn answer_chart(r: &Report) -> String {
    let (w, h, pad) = (640.0, 300.0, 40.0);
    let x = |secs: f64| pad + (secs.max(1.0).ln() / 600f64.ln()).min(1.0) * (w - 2.0 * pad);
    let y = |share: f64| h - pad - share * (h - 2.0 * pad);
    let mut s = format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"answer times\">");
    let _ = write!(s, "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>", y(0.0), w - pad, y(0.0));
    let tx = x(r.target_secs as f64);
    let _ = write!(
        s,
        "<line x1=\"{tx}\" y1=\"{pad}\" x2=\"{tx}\" y2=\"{}\" stroke=\"#000\" stroke-dasharray=\"4\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{} s</text>",
        y(0.0),
        tx + 3.0,
        pad + 10.0,
        r.target_secs
    );
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"2\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">95 %</text>",
        y(0.95),
        w - pad,
        y(0.95),
        pad + 2.0,
        y(0.95) - 3.0
    );
    for t in [1.0, 10.0, 60.0, 600.0] {
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{t} s</text>", x(t), h - pad + 14.0);
    }
    for (i, model) in models(r).iter().enumerate() {
        let mut hist: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
        for row in r.rows.iter().filter(|x| &x.model == model) {
            for (upper, c) in &row.answer_histogram {
                *hist.entry((upper * 1000.0) as u64).or_default() += c;
            }
        }
        let total: u64 = hist.values().sum();
        if total == 0 {
            continue;
        }
        let mut acc = 0;
        let mut pts = vec![format!("{},{}", x(0.0), y(0.0))];
        for (ms, c) in hist {
            acc += c;
            pts.push(format!("{:.1},{:.1}", x(ms as f64 / 1000.0), y(acc as f64 / total as f64)));
        }
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(s, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>", pts.join(" "));
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{}</text>", w - pad - 150.0, pad + 60.0 + 15.0 * i as f64, esc(model));
    }
    s + "</svg>"
}

/// Home-care incidents per day by hour of day, summed over municipalities, per model.
fn load_chart(r: &Report) -> String {
    let (w, h, pad) = (640.0, 260.0, 40.0);
    let ms = models(r);
    let series: Vec<Vec<f64>> = ms
        .iter()
        .map(|m| (0..24).map(|hh| r.rows.iter().filter(|x| &x.model == m).map(|x| x.home_care_by_hour.get(hh).copied().unwrap_or(0.0)).sum()).collect())
        .collect();
    let max = series.iter().flatten().copied().fold(0.0f64, f64::max).max(1e-9);
    let bw = (w - 2.0 * pad) / 24.0 / ms.len().max(1) as f64;
    let mut s = format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"load per hour\">");
    for (i, vals) in series.iter().enumerate() {
        for (hh, v) in vals.iter().enumerate() {
            let bh = v / max * (h - 2.0 * pad);
            let bx = pad + hh as f64 * bw * ms.len() as f64 + i as f64 * bw;
            let _ = write!(
                s,
                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>",
                h - pad - bh,
                bw * 0.9,
                COLOURS[i % COLOURS.len()]
            );
        }
    }
    for hh in (0..24).step_by(3) {
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{hh:02}</text>", pad + hh as f64 * bw * ms.len() as f64, h - pad + 14.0);
    }
    let _ = write!(s, "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">max {max:.2} per day in one hour</text>", pad - 10.0);
    for (i, m) in ms.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{}\">{}</text>",
            w - pad - 150.0,
            pad + 15.0 * i as f64,
            COLOURS[i % COLOURS.len()],
            esc(m)
        );
    }
    s + "</svg>"
}

/// Yearly cost (all municipalities) against the share answered within the target.
fn cost_chart(r: &Report) -> String {
    let (w, h, pad) = (640.0, 300.0, 50.0);
    let ms = models(r);
    let pts: Vec<(String, f64, f64)> = ms
        .iter()
        .map(|m| {
            let rows: Vec<_> = r.rows.iter().filter(|x| &x.model == m).collect();
            let cost: f64 = rows.iter().map(|x| x.yearly_cost_nok).sum();
            let alarms: f64 = rows.iter().map(|x| x.alarms).sum();
            let within: f64 = rows.iter().map(|x| x.share_within_target * x.alarms).sum();
            (m.clone(), cost, if alarms > 0.0 { within / alarms } else { f64::NAN })
        })
        .collect();
    let max_cost = pts.iter().map(|p| p.1).filter(|c| c.is_finite()).fold(1.0f64, f64::max);
    // The share axis spans what the models reach (at least 90 %..100 %), so close results stay apart.
    let lo = pts.iter().map(|p| p.2).filter(|v| v.is_finite()).fold(0.9f64, f64::min) - 0.01;
    let x = |c: f64| pad + c / max_cost * (w - 2.0 * pad - 160.0);
    let y = |share: f64| h - pad - (share - lo) / (1.0 - lo) * (h - 2.0 * pad);
    let mut s = format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"cost and compliance\">");
    if lo < 0.95 {
        let _ = write!(
            s,
            "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"2\"/><text x=\"{pad}\" y=\"{}\" font-size=\"11\">95 % within target</text>",
            y(0.95),
            w - pad,
            y(0.95),
            y(0.95) - 3.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{:.0} %</text><text x=\"{pad}\" y=\"{}\" font-size=\"11\">100 %</text>",
        h - pad + 14.0,
        lo * 100.0,
        pad - 4.0
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">yearly cost, all municipalities (max {:.1} MNOK)</text>",
        w / 2.0,
        h - 10.0,
        max_cost / 1e6
    );
    for (i, (m, c, share)) in pts.iter().enumerate() {
        if !(c.is_finite() && share.is_finite()) {
            continue;
        }
        let colour = COLOURS[i % COLOURS.len()];
        // Labels stacked per model, so points that coincide stay readable.
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{colour}\">{}: {:.1} %, {:.2} MNOK</text>",
            x(*c),
            y(*share),
            x(*c) + 8.0,
            y(*share) + 4.0 + 14.0 * i as f64,
            esc(m),
            share * 100.0,
            c / 1e6
        );
    }
    s + "</svg>"
}

pub fn page(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vakt simulation: {}</title><style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}.bad{{background:#fdd}}</style></head><body>",
        esc(&r.scenario)
    );
    let _ = write!(
        s,
        "<h1>vakt simulation: {}</h1><p>{} days, seed {}, {} replication(s). Answer time: alarm arrival to the first human answer; target {} s.</p>",
        esc(&r.scenario),
        r.days,
        r.seed,
        r.replications,
        r.target_secs
    );
    let _ = write!(s, "<h2>Answer times by model</h2><p>Share of alarms answered within each time (all municipalities).</p>{}", answer_chart(r));
    let _ = write!(s, "<h2>Home-care load by hour of day</h2><p>Incidents reaching home-care staff per day, by hour (UTC), per model.</p>{}", load_chart(r));
    let _ = write!(s, "<h2>Cost and compliance</h2>{}", cost_chart(r));
    s.push_str("<h2>Per municipality and model</h2><table><tr><th>municipality</th><th>model</th><th>alarms</th><th>within target</th><th>p50 s</th><th>p95 s</th><th>p99 s</th><th>on site p50 min</th><th>home care / day</th><th>escalations</th><th>backup forwards</th><th>unanswered</th><th>staff util.</th><th>operator util.</th><th>NOK / year</th></tr>");
    for x in &r.rows {
        let class = if x.share_within_target < 0.95 { " class=\"bad\"" } else { "" };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td{class}>{:.1} %</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.1}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0} %</td><td>{:.0} %</td><td>{:.0}</td></tr>",
            esc(&x.municipality),
            esc(&x.model),
            x.alarms,
            x.share_within_target * 100.0,
            x.answer_p50_secs,
            x.answer_p95_secs,
            x.answer_p99_secs,
            x.on_site_p50_secs / 60.0,
            x.home_care_per_day,
            x.escalations,
            x.backup_forwards,
            x.unanswered,
            x.staff_utilisation * 100.0,
            x.operator_utilisation * 100.0,
            x.yearly_cost_nok
        );
    }
    s.push_str("</table></body></html>\n");
    s
}
