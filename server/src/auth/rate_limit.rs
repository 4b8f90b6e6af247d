//! Rate limits on the auth endpoints: per client IP (sign-up, sign-in, refresh) and per account
//! (sign-in attempts for one email), as token buckets refilled over a minute.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthSettings;
use crate::error::ApiError;

pub struct AuthRateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl AuthRateLimits {
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            per_ip: RateLimiter::keyed(per_minute(settings.rate_per_ip_per_minute)),
            per_account: RateLimiter::keyed(per_minute(settings.rate_per_account_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| self.refused(&not_until))
    }

    /// `account` is the normalized (lower-case) email.
    pub fn check_account(&self, account: &str) -> Result<(), ApiError> {
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|not_until| self.refused(&not_until))
    }

    fn refused(&self, not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded.
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
    }
}
