//! HS256 JWTs with Supabase-compatible claims: verification of tokens signed with the
//! configured secret by this server or an accepted external issuer (`iss`), not before their
//! `nbf`, and issuing of this server's own access tokens, each naming its sign-in
//! (`session_id`) so that a sign-out can end the sockets it opened.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthSettings;

/// Claims we read and write. Supabase tokens carry more (`role`, `session_id`, …); unknown
/// claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// A string or an array of strings; checked by the validator.
    pub aud: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Not valid before (seconds since the epoch), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The sign-in (refresh-token family) the token was issued for; Supabase's claim name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// An external issuer's word that `email` is verified (OpenID Connect's claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// When the issuer confirmed the address (Supabase's name); a non-empty string counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_confirmed_at: Option<serde_json::Value>,
}

impl Claims {
    /// Whether the claims say the address is verified. Only claims the issuer sets count:
    /// `user_metadata` is the user's to write, so it is never read.
    fn says_email_verified(&self) -> bool {
        let confirmed = self
            .email_confirmed_at
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .is_some_and(|at| !at.trim().is_empty());
        self.email_verified == Some(true) || confirmed
    }
}

/// A verified token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub email: Option<String>,
    /// When the token expires (seconds since the epoch).
    pub expires_at: i64,
    /// The sign-in it belongs to, when it names one that is a UUID.
    pub session_id: Option<Uuid>,
    /// An external issuer vouched for the address (this server's own tokens never do: its
    /// accounts verify by link).
    pub email_verified: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token is not meant for this service (aud)")]
    WrongAudience,
    #[error("the token's issuer (iss) is not one this service accepts")]
    WrongIssuer,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's subject is not a user id")]
    BadSubject,
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: String,
    issuer: String,
    access_ttl: Duration,
}

impl JwtKeys {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = &settings.jwt_secret.bytes;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let mut issuers = vec![settings.issuer.as_str()];
        issuers.extend(settings.external_issuers.iter().map(String::as_str));
        validation.set_issuer(&issuers);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            access_ttl: settings.access_token_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| {
            match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::WrongIssuer,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                other => TokenError::Malformed(format!("{other:?}")),
            }
        })?;
        let claims = data.claims;
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| TokenError::BadSubject)?;
        let external = claims.iss.as_deref() != Some(self.issuer.as_str());
        Ok(VerifiedToken {
            email_verified: external && claims.says_email_verified(),
            user_id,
            email: claims.email,
            expires_at: claims.exp,
            session_id: claims
                .session_id
                .as_deref()
                .and_then(|id| Uuid::parse_str(id).ok()),
        })
    }

    /// Issues an access token of sign-in `session` valid for the configured lifetime.
    pub fn issue_access_token(
        &self,
        user_id: Uuid,
        email: Option<&str>,
        session: Uuid,
    ) -> Result<String, TokenError> {
        self.issue(user_id, email, Some(session), self.access_ttl)
    }

    /// Issues a token with an explicit lifetime; without a session (the `potentia token`
    /// command) no sign-out ends it.
    pub fn issue(
        &self,
        user_id: Uuid,
        email: Option<&str>,
        session: Option<Uuid>,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            email: email.map(str::to_owned),
            exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iat: Some(now),
            aud: serde_json::Value::String(self.audience.clone()),
            iss: Some(self.issuer.clone()),
            role: Some("authenticated".to_owned()),
            nbf: None,
            session_id: session.map(|session| session.to_string()),
            email_verified: None,
            email_confirmed_at: None,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| TokenError::Signing(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JwtSecret;

    fn settings(secret: &str, audience: &str) -> AuthSettings {
        AuthSettings {
            jwt_secret: JwtSecret {
                bytes: secret.as_bytes().to_vec(),
                generated: false,
            },
            audience: audience.into(),
            issuer: "potentia".into(),
            external_issuers: vec!["https://project.supabase.example/auth/v1".into()],
            access_token_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(600),
            session_max_lifetime: Duration::from_secs(6000),
            session_check_interval: Duration::from_secs(10),
            refresh_reuse_grace: Duration::ZERO,
            rate_per_ip_per_minute: 10,
            rate_per_account_per_minute: 10,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_subject() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let id = Uuid::new_v4();
        let session = Uuid::new_v4();
        let token = keys.issue_access_token(id, Some("a@b.c"), session).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!(
            (verified.user_id, verified.email, verified.session_id),
            (id, Some("a@b.c".into()), Some(session))
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtKeys::new(&settings("other", "authenticated"));
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let token = other
            .issue_access_token(Uuid::new_v4(), None, Uuid::new_v4())
            .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let other = JwtKeys::new(&settings("s3cret", "someone-else"));
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let token = other
            .issue_access_token(Uuid::new_v4(), None, Uuid::new_v4())
            .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::WrongAudience));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            email: None,
            exp: Utc::now().timestamp() - 3600,
            iat: None,
            aud: "authenticated".into(),
            iss: Some("potentia".into()),
            role: None,
            nbf: None,
            session_id: None,
            email_verified: None,
            email_confirmed_at: None,
        };
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn a_subject_that_is_not_a_uuid_is_refused() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let claims = Claims {
            sub: "not-a-uuid".into(),
            email: None,
            exp: Utc::now().timestamp() + 3600,
            iat: None,
            aud: serde_json::json!(["authenticated"]),
            iss: Some("potentia".into()),
            role: None,
            nbf: None,
            session_id: None,
            email_verified: None,
            email_confirmed_at: None,
        };
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::BadSubject));
    }

    #[test]
    fn garbage_is_malformed() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        assert!(matches!(
            keys.verify("abc.def"),
            Err(TokenError::Malformed(_))
        ));
    }

    fn signed(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap()
    }

    fn claims_with(extra: serde_json::Value) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "sub": Uuid::new_v4().to_string(),
            "aud": "authenticated",
            "exp": Utc::now().timestamp() + 600,
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    }

    #[test]
    fn a_token_of_another_issuer_or_of_none_is_refused() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        for claims in [
            claims_with(serde_json::json!({ "iss": "potentia-staging" })),
            claims_with(serde_json::json!({})),
        ] {
            assert_eq!(keys.verify(&signed(claims)), Err(TokenError::WrongIssuer));
        }
    }

    #[test]
    fn only_an_external_issuers_claims_vouch_for_the_address() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let external = "https://project.supabase.example/auth/v1";
        for (claims, vouched) in [
            (
                serde_json::json!({ "iss": external, "email_verified": true }),
                true,
            ),
            (
                serde_json::json!({ "iss": external, "email_confirmed_at": "2026-01-01T00:00:00Z" }),
                true,
            ),
            // The user writes user_metadata: it vouches for nothing.
            (
                serde_json::json!({ "iss": external, "user_metadata": { "email_verified": true } }),
                false,
            ),
            (
                serde_json::json!({ "iss": external, "email_confirmed_at": "" }),
                false,
            ),
            (
                serde_json::json!({ "iss": external, "email_confirmed_at": false }),
                false,
            ),
            (
                serde_json::json!({ "iss": external, "email_verified": false }),
                false,
            ),
            (serde_json::json!({ "iss": external }), false),
            (
                serde_json::json!({ "iss": "potentia", "email_verified": true }),
                false,
            ),
        ] {
            let verified = keys.verify(&signed(claims_with(claims.clone()))).unwrap();
            assert_eq!(verified.email_verified, vouched, "{claims}");
        }
    }

    #[test]
    fn a_token_of_an_accepted_external_issuer_verifies() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let claims =
            claims_with(serde_json::json!({ "iss": "https://project.supabase.example/auth/v1" }));
        assert!(keys.verify(&signed(claims)).is_ok());
    }

    #[test]
    fn a_token_before_its_nbf_is_refused_and_after_it_verifies() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let now = Utc::now().timestamp();
        let early = claims_with(serde_json::json!({ "iss": "potentia", "nbf": now + 3600 }));
        assert_eq!(keys.verify(&signed(early)), Err(TokenError::NotYetValid));
        let due = claims_with(serde_json::json!({ "iss": "potentia", "nbf": now - 5 }));
        assert!(keys.verify(&signed(due)).is_ok());
    }
}
