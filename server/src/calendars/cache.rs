//! The free/busy cache: each calendar's merged busy intervals over a rolling window, in a Redis
//! sorted set, with Postgres as the source of truth and the fallback.
//!
//! Keys, per calendar:
//!
//! * `potentia:calendar:{id}:fb_gen`: a generation counter, incremented after every committed
//!   change that can move the calendar's busy time ([`FreeBusyCache::invalidate`]).
//! * `potentia:calendar:{id}:fb:{gen}`: the busy intervals of that generation, a sorted set
//!   scored by end (epoch milliseconds), members `start_ms:end_ms`.
//! * `potentia:calendar:{id}:fb:{gen}:window`: `from_ms:to_ms`, the span the set covers; its
//!   presence marks the set as filled (an empty set does not exist in Redis).
//!
//! A reader that computed from data older than an invalidation writes under the old
//! generation, which nobody reads again, so a stale fill can never hide a change. Data keys
//! expire after [`TTL_SECS`]. Without Redis, or when Redis fails, answers come from Postgres.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use potentia_calendar::freebusy::TimePeriod;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;
use uuid::Uuid;

/// How long a filled generation lives.
pub const TTL_SECS: u64 = 3600;
/// The cached span: from this long before today … (well within the 31 days every open
/// series keeps materialized behind now, so filling never extends a schedule backwards)
pub const WINDOW_BACK: Duration = Duration::days(7);
/// … to this long after now (within the materialization horizon).
pub const WINDOW_AHEAD: Duration = Duration::days(364);

/// A handle on the cache; cheap to clone.
#[derive(Clone, Default)]
pub struct FreeBusyCache {
    client: Option<redis::Client>,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

fn gen_key(calendar: Uuid) -> String {
    format!("potentia:calendar:{calendar}:fb_gen")
}

fn set_key(calendar: Uuid, generation: i64) -> String {
    format!("potentia:calendar:{calendar}:fb:{generation}")
}

fn window_key(calendar: Uuid, generation: i64) -> String {
    format!("potentia:calendar:{calendar}:fb:{generation}:window")
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The busy intervals overlapping the asked window (not clipped).
    Hit(Vec<TimePeriod>),
    /// Not cached: fill generation `generation` over the window given.
    Miss { generation: i64, window: TimePeriod },
    /// The asked window is outside what the cache holds; ask Postgres.
    Bypass,
}

impl FreeBusyCache {
    pub fn new(client: Option<redis::Client>) -> Self {
        Self {
            client,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.client.is_some()
    }

    /// The span a fill covers now.
    pub fn fill_window(now: DateTime<Utc>) -> TimePeriod {
        let day = now.timestamp().div_euclid(86_400) * 86_400;
        let today = DateTime::from_timestamp(day, 0).unwrap_or(now);
        TimePeriod::new(today - WINDOW_BACK, today + WINDOW_AHEAD)
    }

    async fn connection(&self) -> redis::RedisResult<Option<MultiplexedConnection>> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        let mut guard = self.connection.lock().await;
        if let Some(connection) = guard.as_ref() {
            return Ok(Some(connection.clone()));
        }
        let connection = client.get_multiplexed_async_connection().await?;
        *guard = Some(connection.clone());
        Ok(Some(connection))
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// Looks up a calendar's busy time over `window`; `None` when there is no Redis or it
    /// failed (logged), meaning: ask Postgres.
    pub async fn lookup(&self, calendar: Uuid, window: &TimePeriod) -> Option<Lookup> {
        match self.try_lookup(calendar, window).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, %calendar, "free/busy cache lookup failed; using Postgres");
                self.forget_connection().await;
                None
            }
        }
    }

    async fn try_lookup(
        &self,
        calendar: Uuid,
        window: &TimePeriod,
    ) -> redis::RedisResult<Option<Lookup>> {
        let Some(mut conn) = self.connection().await? else {
            return Ok(None);
        };
        let generation: Option<i64> = redis::cmd("GET")
            .arg(gen_key(calendar))
            .query_async(&mut conn)
            .await?;
        let generation = generation.unwrap_or(0);
        let stored: Option<String> = redis::cmd("GET")
            .arg(window_key(calendar, generation))
            .query_async(&mut conn)
            .await?;
        let Some(stored) = stored else {
            let fill = Self::fill_window(Utc::now());
            if fill.start <= window.start && window.end <= fill.end {
                return Ok(Some(Lookup::Miss {
                    generation,
                    window: fill,
                }));
            }
            return Ok(Some(Lookup::Bypass));
        };
        let covered = parse_pair(&stored);
        match covered {
            Some(covered) if covered.start <= window.start && window.end <= covered.end => {}
            _ => return Ok(Some(Lookup::Bypass)),
        }
        let from = window.start.timestamp_millis();
        let to = window.end.timestamp_millis();
        let key = set_key(calendar, generation);
        // Intervals ending inside (from, to], plus the first ending after `to` (it may start
        // before `to`); intervals are disjoint, so nothing else overlaps.
        let (inside, next): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(format!("({from}"))
            .arg(to)
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(format!("({to}"))
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let busy = inside
            .iter()
            .chain(&next)
            .filter_map(|member| parse_pair(member))
            .filter(|period| period.overlaps(window))
            .collect();
        Ok(Some(Lookup::Hit(busy)))
    }

    /// Stores a calendar's busy intervals over `window` under `generation` (best effort).
    pub async fn fill(
        &self,
        calendar: Uuid,
        generation: i64,
        window: &TimePeriod,
        busy: &[TimePeriod],
    ) {
        if let Err(err) = self.try_fill(calendar, generation, window, busy).await {
            tracing::warn!(error = %err, %calendar, "free/busy cache fill failed");
            self.forget_connection().await;
        }
    }

    async fn try_fill(
        &self,
        calendar: Uuid,
        generation: i64,
        window: &TimePeriod,
        busy: &[TimePeriod],
    ) -> redis::RedisResult<()> {
        let Some(mut conn) = self.connection().await? else {
            return Ok(());
        };
        let key = set_key(calendar, generation);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&key).ignore();
        for chunk in busy.chunks(1000) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&key);
            for period in chunk {
                zadd.arg(period.end.timestamp_millis())
                    .arg(pair_text(period));
            }
            pipe.add_command(zadd).ignore();
        }
        pipe.cmd("EXPIRE").arg(&key).arg(TTL_SECS).ignore();
        pipe.cmd("SET")
            .arg(window_key(calendar, generation))
            .arg(pair_text(window))
            .arg("EX")
            .arg(TTL_SECS)
            .ignore();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Marks the calendars' cached busy time stale. Call after the change committed.
    pub async fn invalidate(&self, calendars: &[Uuid]) {
        if calendars.is_empty() {
            return;
        }
        let result = async {
            let Some(mut conn) = self.connection().await? else {
                return Ok(());
            };
            let mut pipe = redis::pipe();
            for calendar in calendars {
                pipe.cmd("INCR").arg(gen_key(*calendar)).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        }
        .await;
        if let Err(err) = result {
            // The data keys expire within TTL_SECS; until then a reader may see stale busy
            // time. Logged loudly: this is the one way the cache can lie.
            tracing::error!(error = %err, ?calendars, "free/busy cache invalidation failed");
            self.forget_connection().await;
        }
    }
}

fn pair_text(period: &TimePeriod) -> String {
    format!(
        "{}:{}",
        period.start.timestamp_millis(),
        period.end.timestamp_millis()
    )
}

fn parse_pair(text: &str) -> Option<TimePeriod> {
    let (start, end) = text.split_once(':')?;
    Some(TimePeriod::new(
        DateTime::from_timestamp_millis(start.parse().ok()?)?,
        DateTime::from_timestamp_millis(end.parse().ok()?)?,
    ))
}
