//! Authentication: JWT verification and issuing, password sign-up and sign-in, refresh-token
//! rotation with reuse detection, email verification, sign-out (which also ends the canvas sockets of the session),
//! and rate limits on all of it.

pub mod extract;
pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod routes;
pub mod sessions;
pub mod verification;

pub use extract::{AuthUser, KnownUsers};
pub use jwt::JwtKeys;
pub use rate_limit::AuthRateLimits;
pub use sessions::SessionEnds;
