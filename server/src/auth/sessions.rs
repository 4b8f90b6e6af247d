//! Signed-out sessions, for the canvas sockets they opened.
//!
//! An access token names its sign-in (`session_id`, the refresh-token family). A socket opened
//! with such a token [`SessionEnds::watch`]es it and closes when the watch fires. A watch fires:
//!
//! * at once, on this node, when a sign-out here revokes the session or all of the user's
//!   ([`SessionEnds::end`], [`SessionEnds::end_user`]);
//! * within [`crate::config::AuthSettings::session_check_interval`] on every node, when
//!   [`run_session_checks`] finds the family revoked in Postgres (a sign-out on another node, or
//!   a family revoked because a refresh token was reused). One query a tick covers every
//!   session with an open socket on the node.
//!
//! Tokens without a session (`potentia token`, external tokens without `session_id`) are
//! watched by nothing: they end when they expire. An external token's `session_id` (Supabase
//! has one) is watched too, and ends only by expiry, since its sign-out happens elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The sessions with open sockets on this node.
#[derive(Debug, Default)]
pub struct SessionEnds {
    open: Mutex<HashMap<Uuid, Watched>>,
}

#[derive(Debug)]
struct Watched {
    user_id: Uuid,
    ended: CancellationToken,
    watchers: usize,
}

/// One socket's watch of its session; dropping it stops watching.
#[derive(Debug)]
pub struct SessionWatch {
    ends: Arc<SessionEnds>,
    session: Uuid,
    ended: CancellationToken,
}

impl SessionWatch {
    /// Resolves when the session signs out.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut open = self.ends.lock();
        if let Some(watched) = open.get_mut(&self.session) {
            watched.watchers -= 1;
            if watched.watchers == 0 {
                open.remove(&self.session);
            }
        }
    }
}

impl SessionEnds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Watched>> {
        // The map holds no invariant a panic elsewhere could break.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `session` of `user_id` until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, user_id: Uuid, session: Uuid) -> SessionWatch {
        let mut open = self.lock();
        let watched = open.entry(session).or_insert_with(|| Watched {
            user_id,
            ended: CancellationToken::new(),
            watchers: 0,
        });
        watched.watchers += 1;
        SessionWatch {
            ends: Arc::clone(self),
            session,
            ended: watched.ended.clone(),
        }
    }

    /// Ends `session`'s sockets on this node.
    pub fn end(&self, session: Uuid) {
        if let Some(watched) = self.lock().get(&session) {
            watched.ended.cancel();
        }
    }

    /// Ends every session of `user_id` on this node.
    pub fn end_user(&self, user_id: Uuid) {
        for watched in self.lock().values().filter(|w| w.user_id == user_id) {
            watched.ended.cancel();
        }
    }

    /// How many sessions have open sockets here.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session has an open socket here.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Ends the watched sessions Postgres has revoked; answers how many.
    pub async fn check(&self, db: &PgPool) -> sqlx::Result<usize> {
        let watched: Vec<Uuid> = self.lock().keys().copied().collect();
        if watched.is_empty() {
            return Ok(0);
        }
        let revoked = sqlx::query_scalar!(
            r#"select distinct family_id as "family_id!" from refresh_tokens
               where family_id = any($1) and revoked_at is not null"#,
            &watched
        )
        .fetch_all(db)
        .await?;
        for session in &revoked {
            self.end(*session);
        }
        Ok(revoked.len())
    }
}

/// Runs [`SessionEnds::check`] every `every` until `stop`.
pub async fn run_session_checks(
    ends: Arc<SessionEnds>,
    db: PgPool,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                if let Err(error) = ends.check(&db).await {
                    tracing::warn!(%error, "checking open sockets' sessions failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_fires_when_its_session_or_its_user_ends_and_goes_when_dropped() {
        let ends = Arc::new(SessionEnds::default());
        let (user, session, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = ends.watch(user, session);
        let second = ends.watch(user, other);
        ends.end(other);
        assert!(!first.ended.is_cancelled());
        assert!(second.ended.is_cancelled());
        ends.end_user(user);
        assert!(first.ended.is_cancelled());
        drop((first, second));
        assert!(ends.is_empty());
    }

    #[test]
    fn two_sockets_of_one_session_share_its_watch_until_both_go() {
        let ends = Arc::new(SessionEnds::default());
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let first = ends.watch(user, session);
        let second = ends.watch(user, session);
        drop(first);
        assert_eq!(ends.len(), 1);
        ends.end(session);
        assert!(second.ended.is_cancelled());
        drop(second);
        assert!(ends.is_empty());
    }
}
