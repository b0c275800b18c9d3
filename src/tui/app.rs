//! The UI's state and the one place it changes: `update(Action)` for keys, `on_engine_event`
//! for engine answers. Owns no I/O: queries and decisions leave as `EngineCommand`s collected
//! in an outbox the event loop sends.

use super::keymap::{Action, Key, Keymap};
use super::text_input::{Edit, TextField};
use crate::engine::enrich::online::ProviderStatus;
use crate::engine::store::{ActionRow, AlertDetail, QueueRow, Totals, Verdict};
use crate::engine::{EngineCommand, EngineEvent};
use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which pane keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Queue,
    Actions,
}

/// What a prompt will do when confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Approve,
    /// The second approval of a two-analyst step.
    SecondApproval,
    Reject,
    Rollback,
    Edit,
    /// Record a verdict on an alert; the choice cycles with `next_choice`.
    Disposition {
        alert_id: i64,
        verdict: Verdict,
    },
}

/// The field of a prompt that typing goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptField {
    Params,
    Reason,
}

/// Longest reason an analyst can type; the audit trail keeps it whole.
const MAX_REASON: usize = 500;
/// Longest params JSON the edit prompt holds.
const MAX_PARAMS: usize = 4000;

/// The reason prompt of a decision (and, for an edit, the new params).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub action_id: i64,
    pub kind: PromptKind,
    /// The exact call, shown so the analyst decides on what will run.
    pub rendered: String,
    pub reason: TextField,
    /// Edit only: the params as JSON, prefilled with the current ones.
    pub params: Option<TextField>,
    /// Where typing goes.
    pub field: PromptField,
    pub error: Option<String>,
}

impl Prompt {
    /// A prompt with an empty reason and, for an edit, the current params to change.
    fn new(action_id: i64, kind: PromptKind, rendered: String, params: Option<String>) -> Self {
        let params = params.map(|p| TextField::with_text(&p, MAX_PARAMS));
        Prompt {
            action_id,
            kind,
            rendered,
            reason: TextField::new(MAX_REASON),
            field: if params.is_some() {
                PromptField::Params
            } else {
                PromptField::Reason
            },
            params,
            error: None,
        }
    }

    fn active_field(&mut self) -> &mut TextField {
        match (self.field, &mut self.params) {
            (PromptField::Params, Some(p)) => p,
            _ => &mut self.reason,
        }
    }

    fn next_field(&mut self) {
        if self.params.is_some() {
            self.field = match self.field {
                PromptField::Params => PromptField::Reason,
                PromptField::Reason => PromptField::Params,
            };
        }
    }
}

/// What is over the main screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Prompt(Prompt),
}

/// A status-bar message and when it goes away.
#[derive(Debug, Clone)]
pub struct Message {
    pub text: String,
    pub error: bool,
    pub until: Instant,
}

/// Rows loaded around the visible part of the queue.
#[derive(Debug, Clone, Default)]
pub struct QueueWindow {
    pub offset: u64,
    pub rows: Vec<QueueRow>,
}

pub struct App {
    pub keymap: Keymap,
    pub db_path: String,
    pub model: String,
    pub colours: bool,
    pub focus: Focus,
    pub overlay: Overlay,
    pub totals: Totals,
    pub window: QueueWindow,
    /// Absolute index of the selected row in the whole queue.
    pub selected: u64,
    /// Absolute index of the first visible row.
    pub top: u64,
    /// Alert whose detail is wanted/shown; selection follows it when the queue reorders.
    pub selected_id: Option<i64>,
    pub detail: Option<AlertDetail>,
    /// The detail pane shows enrichment instead of the alert (toggled with `enrichment`).
    pub show_enrichment: bool,
    /// Online providers' budgets and queues, for the status bar.
    pub enrich_status: Vec<ProviderStatus>,
    /// Rows that arrived above the view since the analyst last looked at the top: the view
    /// stays on the selected alert and says how many there are.
    pub new_above: u64,
    /// The analyst has pressed a key. Until then nobody chose the selected alert, so it is
    /// simply the top of the queue as the queue fills; from then on it stays on its alert.
    pub touched: bool,
    /// First line of the help overlay on screen.
    pub help_scroll: u16,
    /// Lines of the detail pane scrolled past (the view stops at its end).
    pub detail_scroll: u16,
    pub action_sel: usize,
    pub message: Option<Message>,
    pub dirty: bool,
    pub should_quit: bool,
    /// A review of a saved case: every decision is refused.
    pub read_only: bool,
    /// Queue rows that fit on screen (set from the terminal size).
    pub visible_rows: u16,
    pub width: u16,
    pub height: u16,
    /// Alerts that arrived, per tick, over the last minute.
    arrivals: VecDeque<(Instant, u64)>,
    /// The alert count at the last tick; `None` until the first answer, so what was already
    /// stored never counts as arriving.
    counted: Option<u64>,
    queue_request: u64,
    detail_request: u64,
    outbox: Vec<EngineCommand>,
}

/// Furthest the detail pane scrolls: more than any alert's detail has lines.
const MAX_DETAIL_SCROLL: u16 = 200;

/// How long a status message stays.
const MESSAGE_TTL: Duration = Duration::from_secs(8);

impl App {
    pub fn new(keymap: Keymap, db_path: String, model: String, colours: bool) -> Self {
        App {
            keymap,
            db_path,
            model,
            colours,
            focus: Focus::Queue,
            overlay: Overlay::None,
            totals: Totals::default(),
            window: QueueWindow::default(),
            selected: 0,
            top: 0,
            selected_id: None,
            detail: None,
            show_enrichment: false,
            enrich_status: Vec::new(),
            new_above: 0,
            touched: false,
            help_scroll: 0,
            detail_scroll: 0,
            action_sel: 0,
            message: None,
            dirty: true,
            should_quit: false,
            read_only: false,
            visible_rows: 10,
            width: 80,
            height: 24,
            arrivals: VecDeque::new(),
            counted: None,
            queue_request: 0,
            detail_request: 0,
            outbox: Vec::new(),
        }
    }

    /// Commands to send to the engine, in order.
    pub fn take_commands(&mut self) -> Vec<EngineCommand> {
        std::mem::take(&mut self.outbox)
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
        self.visible_rows = super::layout::queue_rows(width, height);
        self.scroll_to_selection();
        self.dirty = true;
    }

    /// Ask for the rows around what is visible (a page above and below, so scrolling rarely
    /// waits).
    pub fn request_queue(&mut self) {
        self.queue_request += 1;
        let page = u64::from(self.visible_rows.max(1));
        self.outbox.push(EngineCommand::LoadQueue {
            request: self.queue_request,
            offset: self.top.saturating_sub(page),
            limit: page * 3,
        });
    }

    fn request_detail(&mut self) {
        if let Some(id) = self.selected_id {
            self.detail_request += 1;
            self.outbox.push(EngineCommand::LoadDetail {
                request: self.detail_request,
                alert_id: id,
            });
        }
    }

    pub fn set_error(&mut self, text: String) {
        self.message = Some(Message {
            text,
            error: true,
            until: Instant::now() + MESSAGE_TTL,
        });
        self.dirty = true;
    }

    fn set_notice(&mut self, text: String) {
        self.message = Some(Message {
            text,
            error: false,
            until: Instant::now() + MESSAGE_TTL,
        });
        self.dirty = true;
    }

    /// The queue row at an absolute index, if loaded.
    pub fn row_at(&self, index: u64) -> Option<&QueueRow> {
        index
            .checked_sub(self.window.offset)
            .and_then(|i| self.window.rows.get(i as usize))
    }

    /// The action the approve/reject keys act on.
    pub fn selected_action(&self) -> Option<&ActionRow> {
        self.detail
            .as_ref()
            .and_then(|d| d.actions.get(self.action_sel))
    }

    /// Alerts that arrived in the last minute (not those stored before vigil started).
    pub fn rate_per_minute(&self) -> f64 {
        self.arrivals.iter().map(|(_, n)| *n).sum::<u64>() as f64
    }

    pub fn on_tick(&mut self, now: Instant) {
        if self.message.as_ref().is_some_and(|m| m.until <= now) {
            self.message = None;
            self.dirty = true;
        }
        if let Some(before) = self.counted {
            let arrived = self.totals.alerts.saturating_sub(before);
            if arrived > 0 {
                self.arrivals.push_back((now, arrived));
                self.dirty = true;
            }
            self.counted = Some(self.totals.alerts);
        }
        while self
            .arrivals
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.arrivals.pop_front();
            self.dirty = true;
        }
    }

    pub fn on_db_changed(&mut self) {
        self.request_queue();
        self.request_detail();
    }

    pub fn on_terminal_event(&mut self, ev: Event) {
        match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                self.touched = true;
                let key = Key::from_event(&k);
                let table = match (&self.overlay, self.focus) {
                    (Overlay::Prompt(_), _) => "prompt",
                    (Overlay::Help, _) => "help",
                    (Overlay::None, Focus::Queue) => "queue",
                    (Overlay::None, Focus::Actions) => "actions",
                };
                match self.keymap.lookup(table, key) {
                    Some(a) => self.update(a),
                    None => {
                        if let (Overlay::Prompt(_), Some(c)) = (&self.overlay, typed_char(&k)) {
                            self.update(Action::Text(Edit::Insert(c)));
                        }
                    }
                }
            }
            Event::Resize(w, h) => self.resize(w, h),
            _ => {}
        }
    }

    /// Apply one action. The only place key-driven state changes.
    pub fn update(&mut self, action: Action) {
        self.dirty = true;
        if let Overlay::Prompt(p) = &mut self.overlay {
            match action {
                Action::Text(edit) if p.active_field().apply(edit) => p.error = None,
                Action::Text(_) => {}
                Action::Confirm => {
                    let reason = p.reason.text().trim().to_string();
                    if reason.is_empty() {
                        p.error = Some("a reason is required".into());
                        p.field = PromptField::Reason;
                        return;
                    }
                    let id = p.action_id;
                    let (cmd, verb) = match p.kind {
                        PromptKind::Approve | PromptKind::SecondApproval => (
                            EngineCommand::Decide {
                                action_id: id,
                                approve: true,
                                reason,
                            },
                            "approving",
                        ),
                        PromptKind::Reject => (
                            EngineCommand::Decide {
                                action_id: id,
                                approve: false,
                                reason,
                            },
                            "rejecting",
                        ),
                        PromptKind::Rollback => (
                            EngineCommand::Rollback {
                                action_id: id,
                                reason,
                            },
                            "rolling back",
                        ),
                        PromptKind::Disposition { alert_id, verdict } => {
                            self.outbox.push(EngineCommand::Dispose {
                                alert_id,
                                verdict,
                                reason,
                            });
                            self.overlay = Overlay::None;
                            self.set_notice(format!(
                                "recording {} on alert {alert_id}…",
                                verdict.as_str()
                            ));
                            return;
                        }
                        PromptKind::Edit => {
                            let text = p.params.as_ref().map(TextField::text).unwrap_or_default();
                            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
                                &text,
                            ) {
                                Ok(params) => (
                                    EngineCommand::Edit {
                                        action_id: id,
                                        params,
                                        reason,
                                    },
                                    "editing",
                                ),
                                Err(e) => {
                                    p.error = Some(format!("params: not a JSON object: {e}"));
                                    p.field = PromptField::Params;
                                    return;
                                }
                            }
                        }
                    };
                    self.outbox.push(cmd);
                    self.overlay = Overlay::None;
                    self.set_notice(format!("{verb} action {id}…"));
                }
                Action::NextChoice | Action::FocusNext if p.kind == PromptKind::Edit => {
                    p.next_field()
                }
                Action::NextChoice => {
                    if let PromptKind::Disposition { verdict, .. } = &mut p.kind {
                        *verdict = verdict.next();
                    }
                }
                Action::Cancel => self.overlay = Overlay::None,
                Action::Quit => self.should_quit = true,
                _ => {}
            }
            return;
        }
        if self.overlay == Overlay::Help {
            match action {
                Action::Cancel | Action::Help => self.overlay = Overlay::None,
                Action::Quit => self.should_quit = true,
                Action::ScrollDown => {
                    let lines = super::layout::help_line_count(&self.keymap);
                    self.help_scroll = (self.help_scroll + 1).min(lines);
                }
                Action::ScrollUp => self.help_scroll = self.help_scroll.saturating_sub(1),
                _ => {}
            }
            return;
        }
        if self.read_only {
            let refused = match action {
                Action::Approve => Some("approve"),
                Action::Reject => Some("reject"),
                Action::Rollback => Some("roll back"),
                Action::Edit => Some("edit"),
                Action::Dispose => Some("record a verdict"),
                _ => None,
            };
            if let Some(verb) = refused {
                let review = crate::engine::READ_ONLY_REVIEW;
                self.set_error(format!("{review}: cannot {verb}"));
                return;
            }
        }
        match action {
            Action::Quit => self.should_quit = true,
            Action::Help => {
                self.help_scroll = 0;
                self.overlay = Overlay::Help
            }
            Action::FocusNext => {
                self.focus = match self.focus {
                    Focus::Queue => Focus::Actions,
                    Focus::Actions => Focus::Queue,
                }
            }
            Action::Approve => self.open_prompt(PromptKind::Approve),
            Action::Reject => self.open_prompt(PromptKind::Reject),
            Action::Rollback => self.open_prompt(PromptKind::Rollback),
            Action::Edit => self.open_prompt(PromptKind::Edit),
            Action::ToggleEnrichment => {
                self.show_enrichment = !self.show_enrichment;
                self.detail_scroll = 0;
            }
            Action::ScrollDown => {
                self.detail_scroll = (self.detail_scroll + 1).min(MAX_DETAIL_SCROLL)
            }
            Action::ScrollUp => self.detail_scroll = self.detail_scroll.saturating_sub(1),
            Action::Dispose => match self.selected_id {
                Some(alert_id) => {
                    self.overlay = Overlay::Prompt(Prompt::new(
                        0,
                        PromptKind::Disposition {
                            alert_id,
                            verdict: Verdict::Tp,
                        },
                        String::new(),
                        None,
                    ))
                }
                None => self.set_error("no alert selected".into()),
            },
            Action::Cancel | Action::Confirm | Action::NextChoice | Action::Text(_) => {}
            Action::Next
            | Action::Prev
            | Action::First
            | Action::Last
            | Action::PageDown
            | Action::PageUp => match self.focus {
                Focus::Queue => self.move_queue(action),
                Focus::Actions => self.move_action(action),
            },
        }
    }

    fn open_prompt(&mut self, mut kind: PromptKind) {
        let Some(a) = self.selected_action() else {
            self.set_error("no proposed action for this alert".into());
            return;
        };
        let pending = a.status == "proposed" || a.status == "awaiting_second";
        let refusal = match kind {
            PromptKind::Rollback if a.rollback.is_none() => {
                Some(format!("action {} has no rollback call", a.id))
            }
            PromptKind::Rollback if a.status != "succeeded" => Some(format!(
                "action {} is {}; only a succeeded action can be rolled back",
                a.id, a.status
            )),
            PromptKind::Rollback => None,
            _ if !pending => Some(format!("action {} is already {}", a.id, a.status)),
            _ => None,
        };
        if let Some(msg) = refusal {
            self.set_error(msg);
            return;
        }
        if kind == PromptKind::Approve && a.status == "awaiting_second" {
            kind = PromptKind::SecondApproval;
        }
        let rendered = match (kind, &a.rollback) {
            (PromptKind::Rollback, Some(rb)) => rb.rendered.clone(),
            _ => a.rendered.clone(),
        };
        let params = (kind == PromptKind::Edit)
            .then(|| serde_json::Value::Object(a.params.clone()).to_string());
        self.overlay = Overlay::Prompt(Prompt::new(a.id, kind, rendered, params));
    }

    fn move_action(&mut self, action: Action) {
        let n = self.detail.as_ref().map_or(0, |d| d.actions.len());
        if n == 0 {
            return;
        }
        self.action_sel = match action {
            Action::Next => (self.action_sel + 1).min(n - 1),
            Action::Prev => self.action_sel.saturating_sub(1),
            Action::First | Action::PageUp => 0,
            _ => n - 1,
        };
    }

    fn move_queue(&mut self, action: Action) {
        let total = self.totals.alerts;
        if total == 0 {
            return;
        }
        let page = u64::from(self.visible_rows.max(1));
        let last = total - 1;
        self.selected = match action {
            Action::Next => (self.selected + 1).min(last),
            Action::Prev => self.selected.saturating_sub(1),
            Action::First => 0,
            Action::Last => last,
            Action::PageDown => (self.selected + page).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            _ => self.selected,
        };
        self.scroll_to_selection();
        self.after_selection_moved();
    }

    fn scroll_to_selection(&mut self) {
        let page = u64::from(self.visible_rows.max(1));
        if self.selected < self.top {
            self.top = self.selected;
        } else if self.selected >= self.top + page {
            self.top = self.selected + 1 - page;
        }
        // Rows the analyst has scrolled back up to are no longer unseen.
        self.new_above = self.new_above.min(self.top);
    }

    /// Follow the new selection: its detail, and more rows if it left the loaded window.
    fn after_selection_moved(&mut self) {
        let page = u64::from(self.visible_rows.max(1));
        let loaded_end = self.window.offset + self.window.rows.len() as u64;
        if self.top < self.window.offset || self.top + page > loaded_end {
            self.request_queue();
        }
        // A row not loaded yet selects nothing until it arrives: keeping the old alert would
        // pull the selection back to it when the rows come.
        let id = self.row_at(self.selected).map(|r| r.id);
        if id != self.selected_id {
            self.selected_id = id;
            self.action_sel = 0;
            self.detail_scroll = 0;
            self.request_detail();
        }
    }

    pub fn on_engine_event(&mut self, ev: EngineEvent) {
        self.dirty = true;
        match ev {
            EngineEvent::Queue {
                request,
                offset,
                totals,
                rows,
            } => {
                if request != self.queue_request {
                    return; // a newer request is on its way
                }
                self.counted.get_or_insert(totals.alerts);
                self.totals = totals;
                self.window = QueueWindow { offset, rows };
                // Keep the same alert selected, on the same screen row, when new alerts land
                // above it; count them so the view can say so.
                let chosen = self.selected_id.filter(|_| self.touched);
                if let Some(id) = chosen {
                    if let Some(p) = self.window.rows.iter().position(|r| r.id == id) {
                        let now_at = offset + p as u64;
                        let pushed = now_at.saturating_sub(self.selected);
                        let top_before = self.top;
                        // At the top of the queue new alerts show where they land; further
                        // down the view holds still and counts them instead.
                        if self.top > 0 {
                            self.top += pushed;
                        }
                        self.selected = now_at;
                        self.scroll_to_selection();
                        if pushed > 0 {
                            self.new_above += self.top.saturating_sub(top_before);
                        }
                    }
                }
                if self.totals.alerts > 0 && self.selected >= self.totals.alerts {
                    self.selected = self.totals.alerts - 1;
                    self.scroll_to_selection();
                }
                self.after_selection_moved();
            }
            EngineEvent::Detail { request, detail } => {
                if request != self.detail_request {
                    return;
                }
                self.detail = detail.map(|d| *d);
                let n = self.detail.as_ref().map_or(0, |d| d.actions.len());
                if self.action_sel >= n {
                    self.action_sel = n.saturating_sub(1);
                }
            }
            EngineEvent::Action(row) => {
                if let Some(d) = &mut self.detail {
                    if let Some(a) = d.actions.iter_mut().find(|a| a.id == row.id) {
                        *a = *row;
                    }
                }
            }
            EngineEvent::EnrichStatus(list) => self.enrich_status = list,
            EngineEvent::Notice(text) => {
                if !text.is_empty() {
                    self.set_notice(text);
                }
            }
            EngineEvent::Error(text) => self.set_error(text),
        }
    }
}

/// The character a key types into a prompt, if it types one: control keys never do.
fn typed_char(k: &crossterm::event::KeyEvent) -> Option<char> {
    match k.code {
        KeyCode::Char(c)
            if !c.is_control()
                && !k
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
        {
            Some(c)
        }
        _ => None,
    }
}
