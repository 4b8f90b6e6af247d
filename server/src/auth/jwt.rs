//! HS256 JWTs with Supabase-compatible claims: verification of any token signed with the
//! configured secret, and issuing of this server's own access tokens.

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
}

/// A verified token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token is not meant for this service (aud)")]
    WrongAudience,
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
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
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
                other => TokenError::Malformed(format!("{other:?}")),
            }
        })?;
        let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| TokenError::BadSubject)?;
        Ok(VerifiedToken {
            user_id,
            email: data.claims.email,
        })
    }

    /// Issues an access token valid for the configured lifetime.
    pub fn issue_access_token(
        &self,
        user_id: Uuid,
        email: Option<&str>,
    ) -> Result<String, TokenError> {
        self.issue(user_id, email, self.access_ttl)
    }

    /// Issues a token with an explicit lifetime (the `potentia token` command).
    pub fn issue(
        &self,
        user_id: Uuid,
        email: Option<&str>,
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
            access_token_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(600),
            refresh_reuse_grace: Duration::ZERO,
            rate_per_ip_per_minute: 10,
            rate_per_account_per_minute: 10,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_subject() {
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let id = Uuid::new_v4();
        let token = keys.issue_access_token(id, Some("a@b.c")).unwrap();
        assert_eq!(
            keys.verify(&token).unwrap(),
            VerifiedToken {
                user_id: id,
                email: Some("a@b.c".into())
            }
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtKeys::new(&settings("other", "authenticated"));
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let token = other.issue_access_token(Uuid::new_v4(), None).unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let other = JwtKeys::new(&settings("s3cret", "someone-else"));
        let keys = JwtKeys::new(&settings("s3cret", "authenticated"));
        let token = other.issue_access_token(Uuid::new_v4(), None).unwrap();
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
            iss: None,
            role: None,
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
            iss: None,
            role: None,
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
}
