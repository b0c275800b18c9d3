//! The UI's state and the one place it changes: `update(Action)` for keys, `on_engine_event`
//! for engine answers. Owns no I/O: queries and decisions leave as `EngineCommand`s collected
//! in an outbox the event loop sends.

use super::keymap::{Action, Key, Keymap};
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

/// The reason prompt of a decision (and, for an edit, the new params).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub action_id: i64,
    pub kind: PromptKind,
    /// The exact call, shown so the analyst decides on what will run.
    pub rendered: String,
    pub reason: String,
    /// Edit only: the params as JSON, prefilled with the current ones.
    pub params: String,
    /// Edit only: which field is being typed in (0 params, 1 reason).
    pub field: u8,
    pub error: Option<String>,
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
    rate: VecDeque<(Instant, u64)>,
    queue_request: u64,
    detail_request: u64,
    outbox: Vec<EngineCommand>,
}

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
            action_sel: 0,
            message: None,
            dirty: true,
            should_quit: false,
            read_only: false,
            visible_rows: 10,
            width: 80,
            height: 24,
            rate: VecDeque::new(),
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
        self.visible_rows = super::view::queue_rows(width, height);
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

    /// Alerts per minute over the last minute, from the totals the engine reported.
    pub fn rate_per_minute(&self) -> f64 {
        match (self.rate.front(), self.rate.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                let secs = t1.duration_since(*t0).as_secs_f64().max(1.0);
                (n1.saturating_sub(*n0)) as f64 * 60.0 / secs
            }
            _ => 0.0,
        }
    }

    pub fn on_tick(&mut self, now: Instant) {
        if self.message.as_ref().is_some_and(|m| m.until <= now) {
            self.message = None;
            self.dirty = true;
        }
        self.rate.push_back((now, self.totals.alerts));
        while self
            .rate
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.rate.pop_front();
        }
    }

    pub fn on_db_changed(&mut self) {
        self.request_queue();
        self.request_detail();
    }

    pub fn on_terminal_event(&mut self, ev: Event) {
        match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
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
                        if let Overlay::Prompt(p) = &mut self.overlay {
                            edit_text(p, k.code, k.modifiers);
                            self.dirty = true;
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
                Action::Confirm => {
                    if p.reason.trim().is_empty() {
                        p.error = Some("a reason is required".into());
                        return;
                    }
                    let (id, reason) = (p.action_id, p.reason.trim().to_string());
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
                            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
                                &p.params,
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
                    p.field = 1 - p.field.min(1)
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
            Action::Help => self.overlay = Overlay::Help,
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
            Action::ToggleEnrichment => self.show_enrichment = !self.show_enrichment,
            Action::Dispose => match self.selected_id {
                Some(alert_id) => {
                    self.overlay = Overlay::Prompt(Prompt {
                        action_id: 0,
                        kind: PromptKind::Disposition {
                            alert_id,
                            verdict: Verdict::Tp,
                        },
                        rendered: String::new(),
                        reason: String::new(),
                        params: String::new(),
                        field: 1,
                        error: None,
                    })
                }
                None => self.set_error("no alert selected".into()),
            },
            Action::Cancel | Action::Confirm | Action::NextChoice => {}
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
        self.overlay = Overlay::Prompt(Prompt {
            action_id: a.id,
            kind,
            rendered,
            reason: String::new(),
            params: serde_json::Value::Object(a.params.clone()).to_string(),
            field: if kind == PromptKind::Edit { 0 } else { 1 },
            error: None,
        });
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
    }

    /// Follow the new selection: its detail, and more rows if it left the loaded window.
    fn after_selection_moved(&mut self) {
        let page = u64::from(self.visible_rows.max(1));
        let loaded_end = self.window.offset + self.window.rows.len() as u64;
        if self.top < self.window.offset || self.top + page > loaded_end {
            self.request_queue();
        }
        let id = self.row_at(self.selected).map(|r| r.id);
        if id.is_some() && id != self.selected_id {
            self.selected_id = id;
            self.action_sel = 0;
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
                self.totals = totals;
                self.window = QueueWindow { offset, rows };
                // Keep the same alert selected when new alerts reorder the queue.
                if let Some(id) = self.selected_id {
                    if let Some(p) = self.window.rows.iter().position(|r| r.id == id) {
                        self.selected = offset + p as u64;
                        self.scroll_to_selection();
                    }
                }
                if self.totals.alerts > 0 && self.selected >= self.totals.alerts {
                    self.selected = self.totals.alerts - 1;
                    self.scroll_to_selection();
                }
                if self.rate.is_empty() {
                    self.rate.push_back((Instant::now(), self.totals.alerts));
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

/// Typing in the reason prompt: printable characters, backspace, ctrl-u to clear. Control
/// characters never enter the reason.
fn edit_text(p: &mut Prompt, code: KeyCode, mods: KeyModifiers) {
    const MAX_REASON: usize = 500;
    match code {
        KeyCode::Backspace => {
            p.reason.pop();
        }
        KeyCode::Char('u') if mods.contains(KeyModifiers::CONTROL) => p.reason.clear(),
        KeyCode::Char(c)
            if !c.is_control()
                && !mods.contains(KeyModifiers::CONTROL)
                && p.reason.chars().count() < MAX_REASON =>
        {
            p.reason.push(c);
            p.error = None;
        }
        _ => {}
    }
}
