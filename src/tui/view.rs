//! Drawing: a pure function of `App`. Owns layout, colours and text; every string that came
//! from an alert goes through `sanitize` first. Works at 80x24, hides the detail panes when
//! smaller, and says so below 40x10.

use super::app::{App, Focus, Overlay, PromptField};
use super::keymap::{Action, Keymap};
use super::layout::{compact, help_rows, queue_height, HelpRow, MIN_HEIGHT, MIN_WIDTH};
use super::text_input::TextField;
use crate::engine::enrich::{attack, SourceKind, Verdict};
use crate::engine::score::Score;
use crate::engine::store::{LostFile, QueueRow};
use crate::sanitize::sanitize;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use std::path::Path;

/// Colours unless `NO_COLOR` is set (https://no-color.org).
pub fn colours_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn untrusted(s: &str) -> String {
    sanitize(s).into_owned()
}

struct Palette {
    on: bool,
}

impl Palette {
    fn fg(&self, c: Color) -> Style {
        if self.on {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn band(&self, band: Option<&str>) -> Style {
        match band {
            Some("CRIT") => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Some("HIGH") => self.fg(Color::LightRed),
            Some("MED") => self.fg(Color::Yellow),
            Some("LOW") => self.fg(Color::Green),
            _ => self.fg(Color::DarkGray),
        }
    }
    fn status(&self, status: &str) -> Style {
        match status {
            "proposed" | "awaiting_second" => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            "unknown" | "rollback_unknown" | "rollback_failed" => {
                self.fg(Color::Red).add_modifier(Modifier::BOLD)
            }
            "rolled_back" => self.fg(Color::Cyan),
            "succeeded" => self.fg(Color::Green),
            "failed" | "refused" => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            "running" | "approved" => self.fg(Color::Cyan),
            _ => self.fg(Color::DarkGray),
        }
    }
    fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
}

pub fn draw(f: &mut Frame<'_>, app: &App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small ({}x{}): vigil needs at least {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let pal = Palette { on: app.colours };
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, app, &pal, header);
    let qh = queue_height(area.width, area.height);
    if compact(area.width, area.height) {
        draw_queue(f, app, &pal, body);
    } else {
        let [q, panes] = Layout::vertical([Constraint::Length(qh), Constraint::Min(0)]).areas(body);
        draw_queue(f, app, &pal, q);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(panes);
        draw_detail(f, app, &pal, left);
        draw_actions(f, app, &pal, right);
    }
    draw_status(f, app, &pal, status);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(f, app, &pal, area),
        Overlay::Prompt(_) => draw_prompt(f, app, &pal, area),
    }
}

fn draw_header(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let help = app
        .keymap
        .key_for("queue", Action::Help)
        .unwrap_or_else(|| "?".into());
    let mut spans = vec![
        Span::styled(" vigil ", pal.title().add_modifier(Modifier::REVERSED)),
        Span::raw(" "),
    ];
    if app.read_only {
        spans.push(Span::styled(
            "REVIEW read-only",
            pal.fg(Color::Yellow)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD),
        ));
        spans.push(Span::raw(" "));
    }
    match &app.message {
        Some(m) => spans.push(Span::styled(
            untrusted(&m.text),
            if m.error {
                pal.fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                pal.fg(Color::Cyan)
            },
        )),
        None => match &app.totals.last_lost {
            // Data that was never read outweighs the usual hint until the day is over.
            Some(lost) => spans.push(Span::styled(
                lost_file_line(lost, app.totals.lost_files),
                pal.fg(Color::Red).add_modifier(Modifier::BOLD),
            )),
            None => spans.push(Span::styled(
                format!("alert queue, highest risk first · {help} help"),
                pal.dim(),
            )),
        },
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `⚠ eve.json not found after rotation: 900+ bytes unread · vigil audit` ("+": what was
/// written after vigil's last look cannot be counted; the audit record says where it stopped).
fn lost_file_line(lost: &LostFile, files: u64) -> String {
    let name = Path::new(&lost.path)
        .file_name()
        .map_or_else(|| lost.path.clone(), |n| n.to_string_lossy().into_owned());
    let unread = match lost.unread_bytes {
        0 => "unread tail unknown".to_string(),
        n => format!("{n}+ bytes unread"),
    };
    let more = match files.saturating_sub(1) {
        0 => String::new(),
        n => format!(" (+{n} files)"),
    };
    format!(
        "⚠ {} not found after rotation: {unread}{more} · vigil audit",
        untrusted(&name)
    )
}

fn short_time(ts: &str) -> String {
    // 2024-01-02T03:04:05.123456Z → 01-02 03:04:05
    if ts.len() >= 19 {
        format!("{} {}", &ts[5..10], &ts[11..19])
    } else {
        ts.to_string()
    }
}

fn risk_cell(r: &QueueRow) -> String {
    match (r.band.as_deref(), r.risk) {
        (Some(b), Some(risk)) => format!("{b:<4} {risk:>3}"),
        _ => "---- ---".to_string(),
    }
}

fn draw_queue(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let focused = app.focus == Focus::Queue && app.overlay == Overlay::None;
    let header_style = if focused {
        pal.title()
    } else {
        pal.dim().add_modifier(Modifier::BOLD)
    };
    // Alerts that arrived above the view are announced where the eye is, not scrolled in.
    let rule_header = if app.new_above > 0 {
        let top = app
            .keymap
            .key_for("queue", Action::First)
            .unwrap_or_default();
        format!("RULE  ▲ {} new above ({top}: top)", app.new_above)
    } else {
        "RULE".to_string()
    };
    let header = Row::new(vec![
        Span::raw("RISK"),
        Span::raw("TIME (UTC)"),
        Span::raw("MODULE"),
        Span::raw("SOURCE"),
        Span::styled(
            rule_header,
            if app.new_above > 0 {
                pal.fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            },
        ),
    ])
    .style(header_style);
    let visible = area.height.saturating_sub(1) as u64;
    let mut rows = Vec::new();
    for i in app.top..app.top + visible {
        if i >= app.totals.alerts {
            break;
        }
        let row = match app.row_at(i) {
            Some(r) => {
                let cells = vec![
                    Span::styled(risk_cell(r), pal.band(r.band.as_deref())),
                    Span::raw(short_time(&r.ts)),
                    Span::raw(untrusted(&r.module)),
                    Span::raw(untrusted(r.source_ip.as_deref().unwrap_or("-"))),
                    Span::raw(untrusted(
                        r.rule_name.as_deref().unwrap_or("(no rule name)"),
                    )),
                ];
                Row::new(cells)
            }
            None => Row::new(vec![Span::styled("…", pal.dim())]),
        };
        let row = if i == app.selected {
            row.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row
        };
        rows.push(row);
    }
    let widths = [
        Constraint::Length(8),
        Constraint::Length(14),
        Constraint::Length(8),
        Constraint::Length(15),
        Constraint::Min(10),
    ];
    if app.totals.alerts == 0 {
        let text = vec![
            Line::styled(
                "RISK  TIME (UTC)      MODULE   SOURCE          RULE",
                header_style,
            ),
            Line::styled(
                "no alerts yet: waiting for lines in the watched files",
                pal.dim(),
            ),
        ];
        f.render_widget(Paragraph::new(text), area);
        return;
    }
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        area,
    );
}

/// What an action's status means to an analyst.
fn status_label(status: &str) -> String {
    match status {
        "proposed" => "PENDING".into(),
        "awaiting_second" => "NEEDS 2ND APPROVAL".into(),
        "unknown" => "OUTCOME UNKNOWN".into(),
        "rollback_unknown" => "ROLLBACK OUTCOME UNKNOWN".into(),
        other => other.replace('_', " ").to_uppercase(),
    }
}

fn endpoint(ip: Option<std::net::IpAddr>, port: Option<u16>) -> String {
    match (ip, port) {
        (Some(ip @ std::net::IpAddr::V6(_)), Some(p)) => format!("[{ip}]:{p}"),
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        (Some(ip), None) => ip.to_string(),
        (None, _) => "-".into(),
    }
}

fn field<'a>(label: &'a str, value: String, pal: &Palette) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<9}"), pal.dim()),
        Span::raw(value),
    ])
}

/// A detail pane with nothing to show yet.
fn no_alert_selected(f: &mut Frame<'_>, title: &str, pal: &Palette, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_string())
        .border_style(pal.dim());
    f.render_widget(
        Paragraph::new("select an alert")
            .style(pal.dim())
            .block(block),
        area,
    );
}

fn verdict_style(pal: &Palette, v: Verdict) -> Style {
    match v {
        Verdict::Malicious => pal.fg(Color::Red).add_modifier(Modifier::BOLD),
        Verdict::Suspicious => pal.fg(Color::Yellow),
        Verdict::Clean => pal.fg(Color::Green),
        Verdict::Unknown | Verdict::Info => pal.dim(),
    }
}

/// The enrichment view of the detail pane: every source's answer with its age, worst first,
/// then GeoIP and ATT&CK context. Verdicts are always spelled out, never colour alone.
fn draw_enrichment(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let key = app
        .keymap
        .key_for("queue", Action::ToggleEnrichment)
        .unwrap_or_default();
    let Some(d) = &app.detail else {
        no_alert_selected(f, "Enrichment", pal, area);
        return;
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!("Enrichment · alert #{} ({key}: alert)", d.id))
        .border_style(pal.dim());
    let now = chrono::Utc::now();
    let mut lines = Vec::new();
    for r in d
        .enrichment
        .iter()
        .filter(|r| r.source_kind != SourceKind::Geoip)
    {
        let score = r
            .score
            .map(|s| format!(" {s:>3}"))
            .unwrap_or_else(|| "    ".into());
        let dated = r
            .feed_date
            .as_deref()
            .map(|d| format!(" list {d}"))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<10}", r.verdict.label().to_uppercase()),
                verdict_style(pal, r.verdict),
            ),
            Span::raw(format!("{score} ")),
            Span::raw(untrusted(&r.indicator)),
            Span::styled(
                format!(
                    "  {} · {} ago{dated}",
                    untrusted(&r.source),
                    r.age_label(now)
                ),
                pal.dim(),
            ),
        ]));
    }
    for r in d
        .enrichment
        .iter()
        .filter(|r| r.source_kind == SourceKind::Geoip)
    {
        let g = &r.detail;
        let s = |k: &str| g.get(k).and_then(|v| v.as_str()).map(untrusted);
        let place = [s("country_iso_code"), s("city_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let asn = g
            .get("asn")
            .and_then(|v| v.as_u64())
            .map(|n| format!(" AS{n} {}", s("as_organization").unwrap_or_default()))
            .unwrap_or_default();
        lines.push(field(
            "geo",
            format!("{} {place}{asn}", untrusted(&r.indicator)),
            pal,
        ));
    }
    for t in d
        .alert
        .technique_ids
        .iter()
        .filter_map(|t| attack::technique(t))
    {
        lines.push(field(
            "ATT&CK",
            format!("{} {} · {}", t.id, t.name, t.tactics.join(", ")),
            pal,
        ));
    }
    if d.enrichment_pending {
        lines.push(Line::styled("online lookups queued…", pal.dim()));
    }
    if lines.is_empty() {
        lines.push(Line::styled(
            "no indicator matched a feed or provider",
            pal.dim(),
        ));
    }
    render_scrolled(f, app, block, lines, area);
}

fn draw_detail(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    if app.show_enrichment {
        draw_enrichment(f, app, pal, area);
        return;
    }
    let Some(d) = &app.detail else {
        no_alert_selected(f, "Alert", pal, area);
        return;
    };
    let a = &d.alert;
    let title = match (d.incident_id, d.incident_count) {
        (Some(i), Some(1)) => format!("Alert #{} · incident #{i} (1 alert)", d.id),
        (Some(i), Some(n)) => format!("Alert #{} · incident #{i} ({n} alerts)", d.id),
        _ => format!("Alert #{}", d.id),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(pal.dim());
    let mut lines = Vec::new();
    let mut why = None;
    match &d.score {
        Score::Scored {
            risk, band, top, ..
        } => {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<9}", "risk"), pal.dim()),
                Span::styled(
                    format!("{} {risk}", band.label()),
                    pal.band(Some(band.label())),
                ),
                Span::styled(
                    format!(
                        " · severity {} (producer {})",
                        a.severity.level(),
                        untrusted(a.severity_original.as_deref().unwrap_or("-")),
                    ),
                    pal.dim(),
                ),
            ]));
            let parts: Vec<String> = top
                .iter()
                .take(4)
                .map(|c| {
                    format!(
                        "{}{:.0} {}",
                        if c.points >= 0.0 { "+" } else { "" },
                        c.points,
                        c.feature
                    )
                })
                .collect();
            if !parts.is_empty() {
                why = Some(parts.join(", "));
            }
        }
        Score::Unscored { reason, .. } => {
            lines.push(field(
                "risk",
                format!("unscored: {}", untrusted(reason)),
                pal,
            ));
        }
    }
    if let Some(c) = d.score.attack() {
        let mut text = c.class.label().to_string();
        if let Some(t) = &c.tactic {
            text.push_str(&format!(" · {} {t}", c.tactic_id.as_deref().unwrap_or("")));
        }
        if let Score::Scored { recommendation, .. } = &d.score {
            text.push_str(&format!(" · {}", recommendation.label()));
        }
        lines.push(field("class", text, pal));
    }
    if let Some(v) = &d.disposition {
        lines.push(field(
            "verdict",
            format!(
                "{} by {}: {}",
                v.verdict.as_str(),
                untrusted(&v.decided_by),
                untrusted(&v.reason)
            ),
            pal,
        ));
    }
    lines.push(field(
        "rule",
        untrusted(a.rule_name.as_deref().unwrap_or("-")),
        pal,
    ));
    if let Some(c) = &a.rule_category {
        lines.push(field("category", untrusted(c), pal));
    }
    lines.push(field(
        "network",
        format!(
            "{} → {} {}",
            endpoint(a.source_ip, a.source_port),
            endpoint(a.destination_ip, a.destination_port),
            untrusted(a.transport.as_deref().unwrap_or(""))
        ),
        pal,
    ));
    if a.host_name.is_some() || a.user_name.is_some() {
        lines.push(field(
            "host",
            format!(
                "{}{}",
                untrusted(a.host_name.as_deref().unwrap_or("-")),
                a.user_name
                    .as_deref()
                    .map(|u| format!("  user {}", untrusted(u)))
                    .unwrap_or_default()
            ),
            pal,
        ));
    }
    if !a.technique_ids.is_empty() || !a.tactics.is_empty() {
        lines.push(field(
            "ATT&CK",
            untrusted(&format!(
                "{} {}",
                a.technique_ids.join(","),
                a.tactics.join(",")
            )),
            pal,
        ));
    }
    if let Some(w) = why {
        lines.push(field("why", w, pal));
    }
    lines.push(field(
        "time",
        format!("{} · {}", a.timestamp.to_rfc3339(), untrusted(&a.module)),
        pal,
    ));
    render_scrolled(f, app, block, lines, area);
}

/// A detail pane's text at the analyst's scroll position; when it does not fit, the bottom
/// border says how much more there is and which keys show it.
fn render_scrolled(f: &mut Frame<'_>, app: &App, block: Block<'_>, lines: Vec<Line>, area: Rect) {
    let inner = block.inner(area);
    let text = Paragraph::new(lines).wrap(Wrap { trim: false });
    let hidden = text
        .line_count(inner.width)
        .saturating_sub(usize::from(inner.height));
    let scroll = usize::from(app.detail_scroll).min(hidden);
    let block = if hidden > 0 {
        let down = app
            .keymap
            .key_for("queue", Action::ScrollDown)
            .unwrap_or_default();
        let up = app
            .keymap
            .key_for("queue", Action::ScrollUp)
            .unwrap_or_default();
        let below = hidden - scroll;
        block.title_bottom(if below > 0 {
            format!("{down}: {below} more lines")
        } else {
            format!("{up}: back up")
        })
    } else {
        block
    };
    f.render_widget(
        text.block(block)
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        area,
    );
}

fn draw_actions(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let focused = app.focus == Focus::Actions && app.overlay == Overlay::None;
    let a_key = app
        .keymap
        .key_for("actions", Action::Approve)
        .unwrap_or_default();
    let r_key = app
        .keymap
        .key_for("actions", Action::Reject)
        .unwrap_or_default();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(
            "Proposed actions ({a_key} approve, {r_key} reject)"
        ))
        .border_style(if focused { pal.title() } else { pal.dim() });
    let actions = app
        .detail
        .as_ref()
        .map(|d| d.actions.as_slice())
        .unwrap_or(&[]);
    if actions.is_empty() {
        f.render_widget(
            Paragraph::new("no playbook matched this alert")
                .style(pal.dim())
                .block(block),
            area,
        );
        return;
    }
    // Each action is its own block of lines, so the pane can scroll to the selected one.
    let mut blocks: Vec<Vec<Line>> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let mut lines = Vec::new();
        let marker = if i == app.action_sel { "▶ " } else { "  " };
        let mut head = vec![
            Span::raw(marker),
            Span::styled(
                format!(
                    "#{} {}{}",
                    a.id,
                    status_label(&a.status),
                    if a.escalated { " ESCALATED" } else { "" }
                ),
                pal.status(&a.status),
            ),
            Span::raw(" "),
            Span::raw(untrusted(&a.title)),
        ];
        if i == app.action_sel && focused {
            head.iter_mut()
                .skip(1)
                .for_each(|s| s.style = s.style.add_modifier(Modifier::REVERSED));
        }
        lines.push(Line::from(head));
        lines.push(Line::styled(
            format!("    {}", untrusted(&a.rendered)),
            pal.dim(),
        ));
        let needed = if a.approval == crate::engine::playbook::ApprovalPolicy::TwoAnalysts {
            2
        } else {
            1
        };
        if a.approvals.is_empty() {
            let by = match (&a.decided_by, &a.reason) {
                (Some(who), Some(why)) => format!("    by {} — {}", untrusted(who), untrusted(why)),
                _ => format!(
                    "    {} · {}",
                    untrusted(&a.playbook),
                    a.approval.as_str().replace('_', " ")
                ),
            };
            lines.push(Line::styled(by, pal.dim()));
        }
        for (n, ap) in a.approvals.iter().enumerate() {
            lines.push(Line::styled(
                format!(
                    "    approved {}/{needed} by {} — {}",
                    n + 1,
                    untrusted(&ap.name),
                    untrusted(&ap.reason)
                ),
                pal.dim(),
            ));
        }
        if let Some(rb) = &a.rollback {
            let auto = a
                .revert_at
                .as_deref()
                .map(|t| format!(" (automatic at {})", short_time(t)))
                .unwrap_or_default();
            lines.push(Line::styled(
                format!("    undo: {}{auto}", untrusted(&rb.rendered)),
                pal.dim(),
            ));
        }
        if let Some(o) = &a.outcome {
            lines.push(Line::styled(
                format!("    → {}", untrusted(o)),
                pal.status(&a.status),
            ));
        }
        blocks.push(lines);
    }
    let inner = block.inner(area);
    let heights: Vec<usize> = blocks
        .iter()
        .map(|b| {
            Paragraph::new(b.clone())
                .wrap(Wrap { trim: false })
                .line_count(inner.width)
        })
        .collect();
    let sel = app.action_sel.min(blocks.len().saturating_sub(1));
    let start: usize = heights[..sel].iter().sum();
    let end = start + heights.get(sel).copied().unwrap_or(0);
    let room = usize::from(inner.height);
    // Show the selected action whole when it fits, its head first when it does not.
    let scroll = if end <= room {
        0
    } else if heights.get(sel).copied().unwrap_or(0) <= room {
        end - room
    } else {
        start
    };
    let lines: Vec<Line> = blocks.into_iter().flatten().collect();
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        area,
    );
}

fn draw_status(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let t = &app.totals;
    let width = area.width as usize;
    // What an analyst needs first always shows; the rest joins while it fits.
    let mut parts = vec![
        format!("{} alerts", t.alerts),
        format!("{:.0}/min", app.rate_per_minute()),
        format!("{} pending", t.pending_actions),
    ];
    // Lookup budgets and queues explain waiting enrichment, so they come before the counts.
    let optional = app.enrich_status.iter().map(|p| p.short()).chain([
        format!("{} quarantined", t.quarantined),
        format!("{} incidents", t.incidents),
    ]);
    let db = untrusted(&app.db_path);
    let name_width = db.rsplit('/').next().unwrap_or(&db).chars().count() + 1;
    let len = |parts: &[String]| parts.iter().map(|p| p.chars().count() + 3).sum::<usize>() + 1;
    for part in optional {
        if len(&parts) + part.chars().count() + 3 + name_width <= width {
            parts.push(part);
        }
    }
    let room = width.saturating_sub(len(&parts));
    let text = format!(" {} · {}", parts.join(" · "), shorten_path(&db, room));
    let style = if pal.on {
        Style::default().bg(Color::Blue).fg(Color::White)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    f.render_widget(Paragraph::new(text).style(style), area);
}

/// A path in at most `room` characters, cut only at a separator so no name is ever half
/// shown: `…/evidence/vigil.db`. The file name is kept whole even when it does not fit.
fn shorten_path(path: &str, room: usize) -> String {
    if path.chars().count() <= room {
        return path.to_string();
    }
    let mut tail = String::new();
    for part in path.rsplit('/') {
        let longer = if tail.is_empty() {
            part.to_string()
        } else {
            format!("{part}/{tail}")
        };
        if tail.is_empty() || longer.chars().count() + 2 <= room {
            tail = longer;
        } else {
            break;
        }
    }
    if tail.chars().count() + 2 <= room {
        format!("…/{tail}")
    } else {
        tail
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A prompt field: its label, then the text with the cursor shown where typing goes.
fn field_line<'a>(label: &'a str, field: &TextField, active: bool, pal: &Palette) -> Line<'a> {
    let mut spans = vec![Span::styled(label, pal.title())];
    if !active {
        spans.push(Span::raw(untrusted(&field.text())));
        return Line::from(spans);
    }
    let (before, after) = field.split_at_cursor();
    let mut rest = after.chars();
    spans.push(Span::raw(untrusted(&before)));
    match rest.next() {
        Some(c) => {
            spans.push(Span::styled(
                untrusted(&c.to_string()),
                Style::default().add_modifier(Modifier::REVERSED),
            ));
            spans.push(Span::raw(untrusted(rest.as_str())));
        }
        None => spans.push(Span::styled("█", pal.dim())),
    }
    Line::from(spans)
}

fn draw_prompt(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let Overlay::Prompt(p) = &app.overlay else {
        return;
    };
    use super::app::PromptKind;
    let next = app
        .keymap
        .key_for("prompt", Action::NextChoice)
        .unwrap_or_default();
    let (verb, colour, what) = match p.kind {
        PromptKind::Approve => ("Approve", Color::Green, "This exact call will run:"),
        PromptKind::SecondApproval => (
            "Second approval of",
            Color::Green,
            "Two-person rule: this exact call will run:",
        ),
        PromptKind::Reject => ("Reject", Color::Red, "This call will not run:"),
        PromptKind::Rollback => ("Roll back", Color::Yellow, "This undo call will run:"),
        PromptKind::Edit => ("Edit", Color::Yellow, "Now:"),
        PromptKind::Disposition { .. } => ("Record", Color::Yellow, ""),
    };
    let title = match p.kind {
        PromptKind::Disposition { alert_id, .. } => format!("Verdict on alert #{alert_id}"),
        _ => format!("{verb} action #{}", p.action_id),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(pal.fg(colour));
    // What the analyst decides on (the call) above; what they type and the keys below. The
    // lower part is never cut: the call gets the room that is left.
    let head = match p.kind {
        PromptKind::Disposition { verdict, .. } => vec![
            Line::from(vec![
                Span::styled("Verdict: ", pal.title()),
                Span::raw(
                    ["tp", "fp", "benign"]
                        .iter()
                        .map(|v| {
                            if *v == verdict.as_str() {
                                format!("[{v}]")
                            } else {
                                format!(" {v} ")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]),
            Line::styled(format!("{next}: next verdict"), pal.dim()),
        ],
        _ => vec![
            Line::styled(what, pal.dim()),
            Line::raw(untrusted(&p.rendered)),
        ],
    };
    let mut foot = vec![Line::raw("")];
    if let Some(params) = &p.params {
        foot.push(field_line(
            "Params: ",
            params,
            p.field == PromptField::Params,
            pal,
        ));
    }
    foot.push(field_line(
        "Reason: ",
        &p.reason,
        p.field == PromptField::Reason,
        pal,
    ));
    if let Some(e) = &p.error {
        foot.push(Line::styled(
            untrusted(e),
            pal.fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    let confirm = app
        .keymap
        .key_for("prompt", Action::Confirm)
        .unwrap_or_default();
    let cancel = app
        .keymap
        .key_for("prompt", Action::Cancel)
        .unwrap_or_default();
    foot.push(Line::styled(
        format!(
            "{confirm}: {} · {cancel}: cancel · a reason is required{}",
            verb.to_lowercase(),
            if p.params.is_some() {
                format!(" · {next}: next field")
            } else {
                String::new()
            }
        ),
        pal.dim(),
    ));
    let width = area.width.saturating_sub(4).min(76);
    let inner_width = width.saturating_sub(2);
    let measure = |lines: &[Line]| {
        Paragraph::new(lines.to_vec())
            .wrap(Wrap { trim: false })
            .line_count(inner_width)
    };
    let (head_h, foot_h) = (measure(&head), measure(&foot));
    let height = u16::try_from(head_h + foot_h + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let rect = centered(area, width, height);
    f.render_widget(Clear, rect);
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let foot_h = u16::try_from(foot_h).unwrap_or(u16::MAX).min(inner.height);
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(foot_h)]).areas(inner);
    f.render_widget(Paragraph::new(head).wrap(Wrap { trim: false }), top);
    if head_h > usize::from(top.height) && top.height > 0 {
        // Too long to show whole: say so on the last row rather than cut silently.
        let hidden = head_h - usize::from(top.height) + 1;
        let note_row = Rect {
            y: top.y + top.height - 1,
            height: 1,
            ..top
        };
        f.render_widget(Clear, note_row);
        f.render_widget(
            Paragraph::new(Line::styled(
                format!("… {hidden} more lines of the call not shown"),
                pal.fg(Color::Yellow),
            )),
            note_row,
        );
    }
    f.render_widget(Paragraph::new(foot).wrap(Wrap { trim: false }), bottom);
}

/// The help overlay's lines, styled.
fn help_text(keymap: &Keymap, pal: &Palette) -> Vec<Line<'static>> {
    let rows = help_rows(keymap);
    let keys_width = rows
        .iter()
        .map(|r| match r {
            HelpRow::Keys(k, _) => k.chars().count(),
            HelpRow::Table(_) => 0,
        })
        .max()
        .unwrap_or(0);
    rows.into_iter()
        .map(|r| match r {
            HelpRow::Table(table) => Line::styled(format!("[{table}]"), pal.dim()),
            HelpRow::Keys(keys, action) => Line::from(vec![
                Span::styled(format!("  {keys:<keys_width$} "), pal.title()),
                Span::raw(action.describe()),
            ]),
        })
        .collect()
}

fn draw_help(f: &mut Frame<'_>, app: &App, pal: &Palette, area: Rect) {
    let lines = help_text(&app.keymap, pal);
    let total = u16::try_from(lines.len()).unwrap_or(u16::MAX);
    let rect = centered(area, 78, total.saturating_add(2));
    let room = rect.height.saturating_sub(2);
    let scroll = app.help_scroll.min(total.saturating_sub(room));
    let down = app
        .keymap
        .key_for("help", Action::ScrollDown)
        .unwrap_or_default();
    let up = app
        .keymap
        .key_for("help", Action::ScrollUp)
        .unwrap_or_default();
    let title = if total > room {
        format!(
            "Keys in force · lines {}-{} of {total} · {down}/{up} scroll",
            scroll + 1,
            (scroll + room).min(total)
        )
    } else {
        "Keys (from the keymap in force)".to_string()
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        rect,
    );
}
