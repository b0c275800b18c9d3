//! Request budgets for online providers: a token bucket per limit (4 a minute, 500 a day) in
//! which a spent token comes back exactly one window after it was spent, so no window of that
//! length ever holds more requests than the limit, whatever the burst. Owns the arithmetic
//! only; the client decides what waits. Uses tokio's clock so tests run on paused time.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// At most `requests` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub requests: u32,
    #[serde(with = "secs")]
    pub window: Duration,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl Limit {
    pub fn per_minute(n: u32) -> Self {
        Limit {
            requests: n,
            window: Duration::from_secs(60),
        }
    }
    pub fn per_day(n: u32) -> Self {
        Limit {
            requests: n,
            window: Duration::from_secs(86_400),
        }
    }

    /// `4/min`, `500/day`, `10/30s`.
    pub fn label(&self) -> String {
        let w = match self.window.as_secs() {
            60 => "min".to_string(),
            3600 => "hour".to_string(),
            86_400 => "day".to_string(),
            s => format!("{s}s"),
        };
        format!("{}/{w}", self.requests)
    }
}

/// The budgets of one provider and when each token was spent.
#[derive(Debug, Clone, Default)]
pub struct Quota {
    buckets: Vec<(Limit, VecDeque<Instant>)>,
}

impl Quota {
    pub fn new(limits: &[Limit]) -> Self {
        Quota {
            buckets: limits
                .iter()
                .filter(|l| l.requests > 0)
                .map(|l| (*l, VecDeque::new()))
                .collect(),
        }
    }

    fn prune(&mut self, now: Instant) {
        for (l, spent) in &mut self.buckets {
            while spent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= l.window)
            {
                spent.pop_front();
            }
        }
    }

    /// How long until one more request fits every budget (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.prune(now);
        self.buckets
            .iter()
            .filter(|(l, spent)| spent.len() as u32 >= l.requests)
            .filter_map(|(l, spent)| {
                // The token that returns first is the one spent `len - requests` places in.
                let i = spent.len() - l.requests as usize;
                spent
                    .get(i)
                    .map(|t| (*t + l.window).saturating_duration_since(now))
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Take a token from every bucket. Callers check `wait` first.
    pub fn spend(&mut self, now: Instant) {
        for (_, spent) in &mut self.buckets {
            spent.push_back(now);
        }
    }

    /// Tokens spent in the current window of each limit.
    pub fn used(&mut self, now: Instant) -> Vec<(Limit, u32)> {
        self.prune(now);
        self.buckets
            .iter()
            .map(|(l, spent)| (*l, spent.len() as u32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let mut q = Quota::new(&[Limit::per_minute(4), Limit::per_day(10)]);
        let start = Instant::now();
        let mut sent = Vec::new();
        while sent.len() < 12 {
            let now = Instant::now();
            let w = q.wait(now);
            if w.is_zero() {
                q.spend(now);
                sent.push(now - start);
            } else {
                tokio::time::advance(w).await;
            }
        }
        for (i, t) in sent.iter().enumerate() {
            let in_minute = sent[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(60))
                .count();
            assert!(
                in_minute <= 4,
                "{in_minute} requests within a minute of {t:?}"
            );
        }
        assert_eq!(sent[3], Duration::ZERO, "a burst of 4 is allowed");
        assert_eq!(sent[4], Duration::from_secs(60));
        assert_eq!(sent[9], Duration::from_secs(120));
        assert_eq!(
            sent[10],
            Duration::from_secs(86_400),
            "the daily budget holds"
        );
        // The four spent at 0 s have returned; the six of minutes 1-2 and the two just spent remain.
        assert_eq!(q.used(Instant::now())[1].1, 8);
    }
}
