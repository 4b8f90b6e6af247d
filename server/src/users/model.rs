//! The user profile and the rules for every field a client may set.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};
use crate::validation::{present, FieldErrors};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_PREFERENCES_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// Sign-in email address, lower-cased; null for accounts from an external issuer without one.
    pub email: Option<String>,
    /// True once the account proved it receives mail at `email` (the link of
    /// `POST /api/v1/auth/verify`, or an external token whose claims say so). Invitations sent
    /// to the address are listed to the account, and accepted by id, only then.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// E.164, e.g. `+14155552671`.
    pub phone: Option<String>,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
    /// BCP 47 language tag, e.g. `en-GB`.
    pub locale: String,
    /// Free-form client settings (at most 16 KiB of JSON), stored as given.
    #[schema(value_type = Object)]
    pub preferences: Value,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
}

/// `PATCH /auth/me`: absent fields stay, `null` clears `name` and `phone`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada King", "timezone": "Europe/Paris", "preferences": {"theme": "dark"}}))]
pub struct ProfilePatch {
    /// Display name, 1 to 200 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// International format with a leading `+`; stored as E.164.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// IANA time zone, e.g. `Europe/Paris`; calendar views and reminders use it.
    pub timezone: Option<String>,
    /// BCP 47 language tag, e.g. `en-GB`.
    pub locale: Option<String>,
    /// Replaces the whole preferences object.
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<Value>,
}

impl ProfilePatch {
    /// Applies the patch to `user`, validating every field; a 422 names all invalid fields at once.
    pub fn apply(self, mut user: User) -> Result<User, ApiError> {
        let mut errors = FieldErrors::default();
        if let Some(name) = self.name {
            if let Some(name) = errors.check(name.map(|n| normalize_name(&n)).transpose()) {
                user.name = name;
            }
        }
        if let Some(phone) = self.phone {
            if let Some(phone) = errors.check(phone.map(|p| normalize_phone(&p)).transpose()) {
                user.phone = phone;
            }
        }
        if let Some(tz) = self.timezone {
            if let Some(tz) = errors.check(validate_timezone(&tz)) {
                user.timezone = tz;
            }
        }
        if let Some(locale) = self.locale {
            if let Some(locale) = errors.check(validate_locale(&locale)) {
                user.locale = locale;
            }
        }
        if let Some(preferences) = self.preferences {
            if let Some(preferences) = errors.check(validate_preferences(preferences)) {
                user.preferences = preferences;
            }
        }
        errors.into_result()?;
        Ok(user)
    }
}

/// Trims; the address must have one `@` with a dotted domain, no spaces. Case is kept for
/// display; uniqueness ignores it.
pub fn normalize_email(email: &str) -> Result<String, FieldError> {
    let email = email.trim();
    let invalid = |why: &str| FieldError::new("email", why);
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("must be at most 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("must be an email address like name@example.com"));
    };
    let well_formed = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(email.to_owned())
    } else {
        Err(invalid("must be an email address like name@example.com"))
    }
}

pub fn normalize_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new(
            "name",
            "must not be empty (send null to clear it)",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new("name", "must be at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Parses an international number (`+` and country code) and returns it in E.164 when it is a
/// valid number for its country by libphonenumber's metadata.
pub fn normalize_phone(phone: &str) -> Result<String, FieldError> {
    let phone = phone.trim();
    if !phone.starts_with('+') {
        return Err(FieldError::new(
            "phone",
            "must be in international format with a leading + and country code, e.g. +14155552671",
        ));
    }
    let parsed = phonenumber::parse(None, phone)
        .map_err(|err| FieldError::new("phone", format!("is not a phone number: {err}")))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(FieldError::new(
            "phone",
            "is not a valid number for its country",
        ));
    }
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

pub fn validate_timezone(tz: &str) -> Result<String, FieldError> {
    tz.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            FieldError::new(
                "timezone",
                format!("{tz:?} is not an IANA time zone like Europe/Paris"),
            )
        })
}

/// A BCP 47 tag in its common shape: a 2–3 letter language, then 2–8 character subtags.
pub fn validate_locale(locale: &str) -> Result<String, FieldError> {
    let mut parts = locale.split(['-', '_']);
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if language_ok && rest_ok {
        Ok(locale.replace('_', "-"))
    } else {
        Err(FieldError::new(
            "locale",
            format!("{locale:?} is not a language tag like en or pt-BR"),
        ))
    }
}

pub fn validate_preferences(preferences: Value) -> Result<Value, FieldError> {
    if !preferences.is_object() {
        return Err(FieldError::new("preferences", "must be a JSON object"));
    }
    let size = serde_json::to_vec(&preferences)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PREFERENCES_BYTES {
        return Err(FieldError::new(
            "preferences",
            format!("must be at most {MAX_PREFERENCES_BYTES} bytes of JSON"),
        ));
    }
    Ok(preferences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.org ").unwrap(),
            "Ada@Example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "a@b@c.org",
            "ada@.org",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn timezones_must_be_iana_names() {
        assert_eq!(
            validate_timezone("America/Sao_Paulo").unwrap(),
            "America/Sao_Paulo"
        );
        assert!(validate_timezone("Mars/Olympus").is_err());
        assert!(validate_timezone("").is_err());
    }

    #[test]
    fn locales_follow_the_bcp47_shape() {
        assert_eq!(validate_locale("pt_BR").unwrap(), "pt-BR");
        assert_eq!(validate_locale("zh-Hant-TW").unwrap(), "zh-Hant-TW");
        for bad in ["", "e", "english", "en-", "en-x", "12"] {
            assert!(validate_locale(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn preferences_must_be_a_small_object() {
        assert!(validate_preferences(serde_json::json!([1])).is_err());
        let big = "x".repeat(MAX_PREFERENCES_BYTES);
        assert!(validate_preferences(serde_json::json!({ "k": big })).is_err());
        assert!(validate_preferences(serde_json::json!({ "theme": "dark" })).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(normalize_name("  Ada ").unwrap(), "Ada");
        assert!(normalize_name("   ").is_err());
        assert!(normalize_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn phones_need_a_country_code() {
        assert!(normalize_phone("4155552671").is_err());
        assert_eq!(normalize_phone("+1 415-555-2671").unwrap(), "+14155552671");
    }
}
