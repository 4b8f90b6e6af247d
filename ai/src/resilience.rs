//! The guard every provider call goes through: a concurrency cap, a total deadline, retries
//! with full-jitter exponential backoff that honour `Retry-After`, and a circuit breaker.
//!
//! One [`Resilience`] exists per provider (shared by that provider's chat and embedding
//! clients, since the breaker gauge is labelled by provider). A call is a closure run once per
//! attempt ([`Resilience::call`]); each attempt says whether its failure is worth retrying
//! ([`AttemptError`]). The breaker counts *calls*, not attempts: a call that failed after its
//! retries is one failure; `breaker_failures` consecutive ones open the breaker, which then
//! refuses calls without a request ([`AiError::Unavailable`] with the remaining cooldown) until
//! `breaker_cooldown` has passed; then exactly one call goes through as a probe (one attempt,
//! no retries): its success closes the breaker, its failure opens it again.
//!
//! An answer the provider refused ([`AiError::Rejected`]) proves the provider is up: it resets
//! the failure count. A stream is a successful call once its first event has arrived (it is
//! retried only before that); a failure later is reported with [`Resilience::stream_failed`].
//! Time is tokio's clock, so tests can pause it.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::AiError;
use crate::metrics::{AiMetrics, Operation, Outcome, ProviderLabels};
use crate::settings::{ProviderKind, ResilienceSettings};

/// What callers are told to wait while another call is the breaker's half-open probe.
const PROBE_IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// The circuit breaker's state, as exported in `potentia_ai_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// The cooldown is over: the next call (or the one in flight) is the probe.
    HalfOpen,
    /// Calls are refused without a request.
    Open,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// A failed attempt, and whether trying again may help.
#[derive(Debug)]
pub struct AttemptError {
    pub error: AiError,
    /// 429, 5xx, timeouts, connection errors, malformed answers: yes. Any other 4xx, a refused
    /// key, a safety block: no.
    pub retryable: bool,
}

impl AttemptError {
    pub fn retryable(error: AiError) -> Self {
        Self {
            error,
            retryable: true,
        }
    }

    pub fn permanent(error: AiError) -> Self {
        Self {
            error,
            retryable: false,
        }
    }
}

impl From<AiError> for AttemptError {
    /// Unavailable is retryable, anything else is not.
    fn from(error: AiError) -> Self {
        let retryable = matches!(error, AiError::Unavailable { .. });
        Self { error, retryable }
    }
}

/// What one attempt is given: its deadlines and its slot under the concurrency cap.
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// When the whole call (retries, body and stream included) must be over.
    pub deadline: Instant,
    /// When the response's headers (and, for a stream, its first event) must have arrived.
    pub first_byte_deadline: Instant,
    /// Held while the request is in flight; a stream keeps it until it is dropped.
    pub permit: OwnedSemaphorePermit,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

#[derive(Debug)]
struct Breaker {
    phase: Phase,
    consecutive_failures: u32,
}

enum Admission {
    Normal,
    Probe,
    Refused { retry_after: Duration },
}

/// The per-provider guard. Cheap to share behind an [`Arc`].
pub struct Resilience {
    provider: ProviderKind,
    settings: ResilienceSettings,
    breaker: Mutex<Breaker>,
    slots: Arc<Semaphore>,
    metrics: AiMetrics,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("provider", &self.provider)
            .field("settings", &self.settings)
            .field("breaker", &self.breaker_state())
            .finish()
    }
}

impl Resilience {
    pub fn new(provider: ProviderKind, settings: ResilienceSettings, metrics: AiMetrics) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_concurrency.max(1)));
        let resilience = Self {
            provider,
            settings,
            breaker: Mutex::new(Breaker {
                phase: Phase::Closed,
                consecutive_failures: 0,
            }),
            slots,
            metrics,
        };
        resilience.export(BreakerState::Closed);
        resilience
    }

    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    pub fn settings(&self) -> &ResilienceSettings {
        &self.settings
    }

    pub fn metrics(&self) -> &AiMetrics {
        &self.metrics
    }

    /// The breaker's state now; an open breaker whose cooldown is over reads as half-open.
    pub fn breaker_state(&self) -> BreakerState {
        let breaker = self.lock();
        let state = match breaker.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        drop(breaker);
        self.export(state);
        state
    }

    /// While the breaker is open: how long until it lets a probe through.
    pub fn open_for(&self) -> Option<Duration> {
        match self.lock().phase {
            Phase::Open { until } => until.checked_duration_since(Instant::now()),
            _ => None,
        }
    }

    /// A slot under the concurrency cap, for work that is not an HTTP call (a local model).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, AiError> {
        self.slots.clone().acquire_owned().await.map_err(|_| {
            // The semaphore is never closed; this is unreachable in practice.
            AiError::unavailable(
                self.provider,
                "the provider's concurrency limiter is closed",
            )
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of attempts or of time.
    /// Records the call's outcome and latency in the metrics and its result in the breaker.
    pub async fn call<T, F, Fut>(
        &self,
        model: &str,
        operation: Operation,
        mut attempt: F,
    ) -> Result<T, AiError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let started = Instant::now();
        let deadline = started + self.settings.total_timeout;
        let probe = match self.admit() {
            Admission::Normal => false,
            Admission::Probe => true,
            Admission::Refused { retry_after } => {
                self.metrics.observe_call(
                    self.provider,
                    model,
                    operation,
                    Outcome::BreakerOpen,
                    None,
                );
                return Err(AiError::Unavailable {
                    provider: self.provider,
                    reason: "the circuit breaker is open after repeated failures".into(),
                    retry_after: Some(retry_after),
                });
            }
        };
        // If this future is dropped mid-probe, the breaker must not wait for it forever.
        let mut probe_guard = ProbeGuard {
            resilience: self,
            armed: probe,
        };
        let max_attempts = if probe {
            1
        } else {
            self.settings.max_attempts.max(1)
        };

        let mut number = 0;
        let failure = loop {
            number += 1;
            let permit = match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => {
                    break AiError::unavailable(self.provider, "the concurrency limiter is closed")
                }
                Err(_) => {
                    break AiError::unavailable(
                        self.provider,
                        "timed out waiting for a free request slot",
                    )
                }
            };
            let first_byte_deadline =
                deadline.min(Instant::now() + self.settings.first_byte_timeout);
            let context = Attempt {
                number,
                deadline,
                first_byte_deadline,
                permit,
            };
            let result = match tokio::time::timeout_at(deadline, attempt(context)).await {
                Ok(result) => result,
                Err(_) => Err(AttemptError::permanent(AiError::unavailable(
                    self.provider,
                    "timed out",
                ))),
            };
            match result {
                Ok(value) => {
                    probe_guard.armed = false;
                    self.record_success(probe);
                    self.metrics.observe_call(
                        self.provider,
                        model,
                        operation,
                        Outcome::Ok,
                        Some(started.elapsed().as_secs_f64()),
                    );
                    return Ok(value);
                }
                Err(failed) => {
                    if !failed.retryable || number >= max_attempts {
                        break failed.error;
                    }
                    let hinted = match &failed.error {
                        AiError::Unavailable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let wait = self.backoff(number).max(hinted.unwrap_or_default());
                    if Instant::now() + wait >= deadline {
                        break failed.error;
                    }
                    tracing::debug!(
                        provider = %self.provider,
                        attempt = number,
                        wait_ms = wait.as_millis() as u64,
                        error = %failed.error,
                        "provider call failed; retrying",
                    );
                    tokio::time::sleep(wait).await;
                    // Other calls may have opened the breaker meanwhile: stop hammering.
                    if matches!(self.lock().phase, Phase::Open { .. }) {
                        break failed.error;
                    }
                }
            }
        };

        probe_guard.armed = false;
        let outcome = match failure {
            AiError::Rejected { .. } => {
                self.record_success(probe);
                Outcome::Rejected
            }
            _ => {
                self.record_failure(probe);
                Outcome::Unavailable
            }
        };
        self.metrics
            .observe_call(self.provider, model, operation, outcome, None);
        tracing::warn!(
            provider = %self.provider,
            model,
            attempts = number,
            error = %failure,
            "provider call failed",
        );
        Err(failure)
    }

    /// A stream that was handed out (and counted as a success) failed later: one more failed
    /// call for the breaker and the metrics.
    pub fn stream_failed(&self, model: &str, error: &AiError) {
        if matches!(error, AiError::Unavailable { .. }) {
            self.record_failure(false);
            self.metrics.observe_call(
                self.provider,
                model,
                Operation::Stream,
                Outcome::Unavailable,
                None,
            );
        } else {
            self.metrics.observe_call(
                self.provider,
                model,
                Operation::Stream,
                Outcome::Rejected,
                None,
            );
        }
        tracing::warn!(provider = %self.provider, model, error = %error, "provider stream failed");
    }

    /// Full jitter: uniform in [0, min(max_backoff, initial · 2^(n-1))].
    fn backoff(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(30);
        let ceiling = self
            .settings
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.settings.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    fn admit(&self) -> Admission {
        let mut breaker = self.lock();
        let now = Instant::now();
        let (admission, state) = match breaker.phase {
            Phase::Closed => (Admission::Normal, BreakerState::Closed),
            Phase::Open { until } if now < until => (
                Admission::Refused {
                    retry_after: until - now,
                },
                BreakerState::Open,
            ),
            Phase::Open { .. }
            | Phase::HalfOpen {
                probe_in_flight: false,
            } => {
                breaker.phase = Phase::HalfOpen {
                    probe_in_flight: true,
                };
                (Admission::Probe, BreakerState::HalfOpen)
            }
            Phase::HalfOpen {
                probe_in_flight: true,
            } => (
                Admission::Refused {
                    retry_after: PROBE_IN_FLIGHT_RETRY,
                },
                BreakerState::HalfOpen,
            ),
        };
        drop(breaker);
        self.export(state);
        admission
    }

    fn record_success(&self, probe: bool) {
        let mut breaker = self.lock();
        let state = match breaker.phase {
            Phase::Closed => {
                breaker.consecutive_failures = 0;
                BreakerState::Closed
            }
            Phase::HalfOpen { .. } if probe => {
                breaker.phase = Phase::Closed;
                breaker.consecutive_failures = 0;
                tracing::info!(provider = %self.provider, "circuit breaker closed");
                BreakerState::Closed
            }
            // A call admitted before the breaker opened: the probe decides, not it.
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
        };
        drop(breaker);
        self.export(state);
    }

    fn record_failure(&self, probe: bool) {
        let mut breaker = self.lock();
        let now = Instant::now();
        let state = match breaker.phase {
            Phase::HalfOpen { .. } if probe => {
                breaker.phase = Phase::Open {
                    until: now + self.settings.breaker_cooldown,
                };
                tracing::warn!(provider = %self.provider, "circuit breaker probe failed; open again");
                BreakerState::Open
            }
            Phase::Closed => {
                breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
                if breaker.consecutive_failures >= self.settings.breaker_failures.max(1) {
                    breaker.phase = Phase::Open {
                        until: now + self.settings.breaker_cooldown,
                    };
                    tracing::warn!(
                        provider = %self.provider,
                        failures = breaker.consecutive_failures,
                        cooldown_ms = self.settings.breaker_cooldown.as_millis() as u64,
                        "circuit breaker open",
                    );
                    BreakerState::Open
                } else {
                    BreakerState::Closed
                }
            }
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
        };
        drop(breaker);
        self.export(state);
    }

    /// A probe that never finished (its future was dropped): let the next call probe.
    fn abandon_probe(&self) {
        let mut breaker = self.lock();
        if let Phase::HalfOpen { .. } = breaker.phase {
            breaker.phase = Phase::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    fn export(&self, state: BreakerState) {
        self.metrics
            .breaker_state
            .get_or_create(&ProviderLabels {
                provider: self.provider.into(),
            })
            .set(state.gauge_value());
    }

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        // The breaker holds plain values that are always consistent between statements, so a
        // panic elsewhere while holding the lock cannot leave it half-updated.
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct ProbeGuard<'a> {
    resilience: &'a Resilience,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.resilience.abandon_probe();
        }
    }
}

/// Parses a `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    // A date in the past means "now".
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ResilienceSettings {
        ResilienceSettings {
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(60),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            breaker_failures: 2,
            breaker_cooldown: COOLDOWN,
            max_concurrency: 2,
        }
    }

    // Real time, not a paused clock: tokio's `test-util` would give the test build other tokio
    // features than the server binary's and make `serve.sh` rebuild after the tests. Waits are
    // at least the cooldown, and nothing asserted before one takes anywhere near it.
    const COOLDOWN: Duration = Duration::from_secs(2);

    async fn after_cooldown() {
        tokio::time::sleep(COOLDOWN).await;
    }

    fn down() -> AttemptError {
        AttemptError::retryable(AiError::unavailable(ProviderKind::Gemini, "down"))
    }

    async fn fail(guard: &Resilience) -> Result<(), AiError> {
        guard
            .call("m", Operation::Complete, |_| async { Err::<(), _>(down()) })
            .await
    }

    async fn succeed(guard: &Resilience) -> Result<(), AiError> {
        guard
            .call("m", Operation::Complete, |_| async { Ok(()) })
            .await
    }

    #[tokio::test]
    async fn the_breaker_opens_half_opens_and_closes() {
        let guard = Resilience::new(ProviderKind::Gemini, settings(), AiMetrics::default());
        assert_eq!(guard.breaker_state(), BreakerState::Closed);
        fail(&guard).await.unwrap_err();
        assert_eq!(guard.breaker_state(), BreakerState::Closed);
        fail(&guard).await.unwrap_err();
        assert_eq!(guard.breaker_state(), BreakerState::Open);

        let refused = succeed(&guard).await.unwrap_err();
        match refused {
            AiError::Unavailable { retry_after, .. } => {
                assert!(retry_after.unwrap() <= COOLDOWN);
            }
            other => panic!("{other:?}"),
        }

        after_cooldown().await;
        assert_eq!(guard.breaker_state(), BreakerState::HalfOpen);
        succeed(&guard).await.unwrap();
        assert_eq!(guard.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_failed_probe_opens_the_breaker_again_after_one_attempt() {
        let guard = Resilience::new(ProviderKind::Gemini, settings(), AiMetrics::default());
        fail(&guard).await.unwrap_err();
        fail(&guard).await.unwrap_err();
        after_cooldown().await;

        let mut attempts = 0;
        guard
            .call("m", Operation::Complete, |_| {
                attempts += 1;
                async { Err::<(), _>(down()) }
            })
            .await
            .unwrap_err();
        assert_eq!(attempts, 1);
        assert_eq!(guard.breaker_state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn a_rejection_resets_the_failure_count() {
        let guard = Resilience::new(ProviderKind::OpenAi, settings(), AiMetrics::default());
        fail(&guard).await.unwrap_err();
        guard
            .call("m", Operation::Complete, |_| async {
                Err::<(), _>(AttemptError::permanent(AiError::rejected(
                    ProviderKind::OpenAi,
                    "bad input",
                )))
            })
            .await
            .unwrap_err();
        fail(&guard).await.unwrap_err();
        assert_eq!(guard.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_dropped_probe_lets_the_next_call_probe() {
        let guard = Resilience::new(ProviderKind::Gemini, settings(), AiMetrics::default());
        fail(&guard).await.unwrap_err();
        fail(&guard).await.unwrap_err();
        after_cooldown().await;
        let hanging = guard.call("m", Operation::Complete, |_| {
            std::future::pending::<Result<(), AttemptError>>()
        });
        tokio::time::timeout(Duration::from_millis(10), hanging)
            .await
            .unwrap_err();
        succeed(&guard).await.unwrap();
        assert_eq!(guard.breaker_state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn retries_wait_at_least_the_hinted_delay() {
        let guard = Resilience::new(ProviderKind::Gemini, settings(), AiMetrics::default());
        let started = Instant::now();
        let mut attempts = 0;
        guard
            .call("m", Operation::Complete, |_| {
                attempts += 1;
                let first = attempts == 1;
                async move {
                    if first {
                        Err(AttemptError::retryable(AiError::Unavailable {
                            provider: ProviderKind::Gemini,
                            reason: "429".into(),
                            retry_after: Some(Duration::from_millis(300)),
                        }))
                    } else {
                        Ok(())
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(attempts, 2);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn backoff_is_capped_and_jittered_below_the_ceiling() {
        let guard = Resilience::new(ProviderKind::Gemini, settings(), AiMetrics::default());
        for attempt in 1..40 {
            assert!(guard.backoff(attempt) <= Duration::from_millis(5));
        }
        assert!(guard.backoff(1) <= Duration::from_millis(1));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
