//! SMTP configuration: the `POTENTIA_SMTP_*` flags and their validation into [`SmtpSettings`].
//!
//! `POTENTIA_SMTP_URL` follows lettre's URL format: `smtp://host:port` is a plain connection,
//! `smtp://host:587?tls=required` upgrades with STARTTLS (`?tls=opportunistic` only when offered),
//! and `smtps://host:465` speaks TLS from the first byte. `user:password@` before the host gives
//! credentials (percent-encoded). A password is never sent over a connection that may stay
//! unencrypted, except to a loopback address.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use url::{Host, Url};

use super::outbox::Backoff;

/// Attempts per message when `POTENTIA_SMTP_MAX_ATTEMPTS` is not given (and for mail queued while
/// SMTP is not configured). With the default backoff they span about three hours.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// Bounds `POTENTIA_SMTP_MAX_ATTEMPTS`; it is stored per message as a Postgres `integer`.
const MAX_MAX_ATTEMPTS: u32 = 1000;

/// How long one SMTP command may take before the attempt counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of outgoing mail; without `POTENTIA_SMTP_URL` no mail is sent and it stays queued.
#[derive(Debug, Clone, clap::Args)]
pub struct SmtpArgs {
    /// SMTP server for outgoing mail, e.g. `smtps://user:pass@mail.example.com:465`,
    /// `smtp://user:pass@mail.example.com:587?tls=required` (STARTTLS) or
    /// `smtp://127.0.0.1:2525` (plain). Unset: mail stays queued in the outbox.
    #[arg(long, env = "POTENTIA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of outgoing mail: `noreply@example.com` or `Potentia <noreply@example.com>`.
    #[arg(long, env = "POTENTIA_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// Seconds between looks at the outbox; queuing mail also wakes the sender at once.
    #[arg(long, env = "POTENTIA_SMTP_POLL_SECS", default_value_t = 5)]
    pub smtp_poll_secs: u64,

    /// Delivery attempts per message before it is marked `failed`.
    #[arg(long, env = "POTENTIA_SMTP_MAX_ATTEMPTS", default_value_t = DEFAULT_MAX_ATTEMPTS)]
    pub smtp_max_attempts: u32,

    /// Wait after the first failed attempt, in seconds; it doubles with each further failure.
    #[arg(long, env = "POTENTIA_SMTP_RETRY_BASE_SECS", default_value_t = 30)]
    pub smtp_retry_base_secs: u64,

    /// Longest wait between two attempts, in seconds.
    #[arg(long, env = "POTENTIA_SMTP_RETRY_MAX_SECS", default_value_t = 3600)]
    pub smtp_retry_max_secs: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SmtpConfigError {
    /// The message never contains the URL itself: it may hold a password.
    #[error("POTENTIA_SMTP_URL is not a valid URL: {0}")]
    BadUrl(String),
    #[error("POTENTIA_SMTP_URL must start with smtp:// or smtps:// (got {0}://)")]
    BadScheme(String),
    #[error("POTENTIA_SMTP_URL has no host")]
    MissingHost,
    #[error("POTENTIA_SMTP_URL: tls={0:?} is not one of `required` or `opportunistic`")]
    BadTlsMode(String),
    #[error("POTENTIA_SMTP_URL: ?tls= applies to smtp:// only; smtps:// always uses TLS")]
    TlsModeWithSmtps,
    #[error("POTENTIA_SMTP_URL: unknown parameter {0:?} (only `tls` is understood)")]
    UnknownParameter(String),
    #[error("POTENTIA_SMTP_URL must not have a path (got {0:?})")]
    UnexpectedPath(String),
    #[error("POTENTIA_SMTP_URL: credentials need both a user name and a password")]
    IncompleteCredentials,
    #[error("POTENTIA_SMTP_URL: the user name or password is not valid percent-encoded UTF-8")]
    BadCredentialEncoding,
    #[error(
        "POTENTIA_SMTP_URL would send the password unencrypted to {0}; \
         use smtps:// or add ?tls=required"
    )]
    PasswordInTheClear(String),
    #[error("POTENTIA_SMTP_URL: cannot set up TLS for {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("POTENTIA_SMTP_FROM is required when POTENTIA_SMTP_URL is set")]
    MissingFrom,
    #[error("POTENTIA_SMTP_FROM: {0:?} is not an address like `Potentia <noreply@example.com>`")]
    BadFrom(String),
    #[error("{name} must be greater than zero")]
    Zero { name: &'static str },
    #[error("POTENTIA_SMTP_MAX_ATTEMPTS must be at most {MAX_MAX_ATTEMPTS}")]
    TooManyAttempts,
    #[error("POTENTIA_SMTP_RETRY_MAX_SECS must not be below POTENTIA_SMTP_RETRY_BASE_SECS")]
    RetryCapBelowBase,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS at all (`smtp://`).
    Plain,
    /// STARTTLS when the server offers it, plain otherwise (`smtp://…?tls=opportunistic`).
    StartTlsOpportunistic,
    /// STARTTLS, refusing servers that do not offer it (`smtp://…?tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
}

/// SMTP credentials; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where and how to connect, parsed from `POTENTIA_SMTP_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// A host name, or an IP address without brackets.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub credentials: Option<SmtpCredentials>,
}

/// Validated configuration of outgoing mail.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub server: SmtpServer,
    pub from: Mailbox,
    pub poll_interval: Duration,
    /// Attempts allowed to each message queued by this node.
    pub max_attempts: i32,
    pub retry: Backoff,
}

impl SmtpArgs {
    /// The settings of outgoing mail, or `None` when `POTENTIA_SMTP_URL` is not set.
    pub fn validate(&self) -> Result<Option<SmtpSettings>, SmtpConfigError> {
        let Some(url) = &self.smtp_url else {
            return Ok(None);
        };
        let server = SmtpServer::parse(url)?;
        // Surfaces a host that TLS cannot verify now rather than at the first delivery.
        server.transport()?;
        let from = self
            .smtp_from
            .as_deref()
            .ok_or(SmtpConfigError::MissingFrom)?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|_| SmtpConfigError::BadFrom(from.to_owned()))?;
        for (name, value) in [
            ("POTENTIA_SMTP_POLL_SECS", self.smtp_poll_secs),
            (
                "POTENTIA_SMTP_MAX_ATTEMPTS",
                u64::from(self.smtp_max_attempts),
            ),
            ("POTENTIA_SMTP_RETRY_BASE_SECS", self.smtp_retry_base_secs),
            ("POTENTIA_SMTP_RETRY_MAX_SECS", self.smtp_retry_max_secs),
        ] {
            if value == 0 {
                return Err(SmtpConfigError::Zero { name });
            }
        }
        if self.smtp_max_attempts > MAX_MAX_ATTEMPTS {
            return Err(SmtpConfigError::TooManyAttempts);
        }
        let max_attempts =
            i32::try_from(self.smtp_max_attempts).map_err(|_| SmtpConfigError::TooManyAttempts)?;
        if self.smtp_retry_max_secs < self.smtp_retry_base_secs {
            return Err(SmtpConfigError::RetryCapBelowBase);
        }
        Ok(Some(SmtpSettings {
            server,
            from,
            poll_interval: Duration::from_secs(self.smtp_poll_secs),
            max_attempts,
            retry: Backoff {
                base: Duration::from_secs(self.smtp_retry_base_secs),
                cap: Duration::from_secs(self.smtp_retry_max_secs),
            },
        }))
    }
}

impl SmtpServer {
    /// Parses an `smtp://` or `smtps://` URL (see the module documentation).
    pub fn parse(raw: &str) -> Result<Self, SmtpConfigError> {
        let url = Url::parse(raw).map_err(|err| SmtpConfigError::BadUrl(err.to_string()))?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(SmtpConfigError::BadScheme(other.to_owned())),
        };
        let host = match url.host() {
            Some(Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(SmtpConfigError::MissingHost),
        };
        if !matches!(url.path(), "" | "/") {
            return Err(SmtpConfigError::UnexpectedPath(url.path().to_owned()));
        }
        let mut tls_mode = None;
        for (key, value) in url.query_pairs() {
            if key == "tls" {
                tls_mode = Some(value.into_owned());
            } else {
                return Err(SmtpConfigError::UnknownParameter(key.into_owned()));
            }
        }
        let security = match (implicit_tls, tls_mode.as_deref()) {
            (true, None) => SmtpSecurity::ImplicitTls,
            (true, Some(_)) => return Err(SmtpConfigError::TlsModeWithSmtps),
            (false, None) => SmtpSecurity::Plain,
            (false, Some("required")) => SmtpSecurity::StartTls,
            (false, Some("opportunistic")) => SmtpSecurity::StartTlsOpportunistic,
            (false, Some(other)) => return Err(SmtpConfigError::BadTlsMode(other.to_owned())),
        };
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls | SmtpSecurity::StartTlsOpportunistic => 587,
            SmtpSecurity::ImplicitTls => 465,
        });
        let credentials = credentials(&url)?;
        let encrypted = matches!(security, SmtpSecurity::StartTls | SmtpSecurity::ImplicitTls);
        if credentials.is_some() && !encrypted && !is_loopback(&host) {
            return Err(SmtpConfigError::PasswordInTheClear(host));
        }
        Ok(Self {
            host,
            port,
            security,
            credentials,
        })
    }

    /// An SMTP transport for this server. It opens a new connection for every message.
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpConfigError> {
        let tls_parameters = || {
            TlsParameters::new(self.host.clone()).map_err(|err| SmtpConfigError::Tls {
                host: self.host.clone(),
                reason: err.to_string(),
            })
        };
        let tls = match self.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTlsOpportunistic => Tls::Opportunistic(tls_parameters()?),
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT));
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(Credentials::new(
                credentials.username.clone(),
                credentials.password.clone(),
            ));
        }
        Ok(builder.build())
    }
}

fn credentials(url: &Url) -> Result<Option<SmtpCredentials>, SmtpConfigError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| SmtpConfigError::BadCredentialEncoding)
    };
    match (url.username(), url.password()) {
        ("", None) => Ok(None),
        ("", Some(_)) | (_, None) => Err(SmtpConfigError::IncompleteCredentials),
        (username, Some(password)) => Ok(Some(SmtpCredentials {
            username: decode(username)?,
            password: decode(password)?,
        })),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        smtp: SmtpArgs,
    }

    fn settings(args: &[&str]) -> Result<Option<SmtpSettings>, SmtpConfigError> {
        let mut argv = vec!["potentia"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).smtp.validate()
    }

    fn server(url: &str) -> SmtpServer {
        SmtpServer::parse(url).unwrap()
    }

    #[test]
    fn smtp_url_without_tls_is_a_plain_connection_on_the_given_port() {
        assert_eq!(
            server("smtp://127.0.0.1:2525"),
            SmtpServer {
                host: "127.0.0.1".into(),
                port: 2525,
                security: SmtpSecurity::Plain,
                credentials: None,
            }
        );
    }

    #[test]
    fn smtps_url_uses_implicit_tls_on_port_465_by_default() {
        let server = server("smtps://mail.example.com");
        assert_eq!(server.security, SmtpSecurity::ImplicitTls);
        assert_eq!(server.port, 465);
    }

    #[test]
    fn tls_required_means_starttls_on_port_587_by_default() {
        let server = server("smtp://mail.example.com?tls=required");
        assert_eq!(server.security, SmtpSecurity::StartTls);
        assert_eq!(server.port, 587);
    }

    #[test]
    fn tls_opportunistic_means_starttls_when_offered() {
        assert_eq!(
            server("smtp://mail.example.com:2587?tls=opportunistic").security,
            SmtpSecurity::StartTlsOpportunistic
        );
    }

    #[test]
    fn plain_smtp_url_defaults_to_port_25() {
        assert_eq!(server("smtp://mail.example.com").port, 25);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let server = server("smtps://ada%40example.org:p%3Ass%2Fw0rd@mail.example.com:465");
        assert_eq!(
            server.credentials,
            Some(SmtpCredentials {
                username: "ada@example.org".into(),
                password: "p:ss/w0rd".into(),
            })
        );
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        assert_eq!(server("smtp://[::1]:2525").host, "::1");
    }

    #[test]
    fn a_password_over_plain_smtp_to_a_remote_host_is_refused() {
        assert_eq!(
            SmtpServer::parse("smtp://user:pass@mail.example.com:587").unwrap_err(),
            SmtpConfigError::PasswordInTheClear("mail.example.com".into())
        );
    }

    #[test]
    fn a_password_over_opportunistic_starttls_to_a_remote_host_is_refused() {
        assert!(matches!(
            SmtpServer::parse("smtp://user:pass@mail.example.com?tls=opportunistic"),
            Err(SmtpConfigError::PasswordInTheClear(_))
        ));
    }

    #[test]
    fn a_password_over_plain_smtp_to_loopback_is_allowed() {
        assert!(server("smtp://user:pass@127.0.0.1:2525")
            .credentials
            .is_some());
    }

    #[test]
    fn a_password_over_starttls_is_allowed() {
        assert!(server("smtp://user:pass@mail.example.com:587?tls=required")
            .credentials
            .is_some());
    }

    #[test]
    fn a_user_name_without_password_is_refused() {
        assert_eq!(
            SmtpServer::parse("smtps://user@mail.example.com").unwrap_err(),
            SmtpConfigError::IncompleteCredentials
        );
    }

    #[test]
    fn another_scheme_is_refused() {
        assert_eq!(
            SmtpServer::parse("http://mail.example.com").unwrap_err(),
            SmtpConfigError::BadScheme("http".into())
        );
    }

    #[test]
    fn an_unknown_tls_mode_is_refused() {
        assert_eq!(
            SmtpServer::parse("smtp://mail.example.com?tls=yes").unwrap_err(),
            SmtpConfigError::BadTlsMode("yes".into())
        );
    }

    #[test]
    fn a_tls_mode_on_smtps_is_refused() {
        assert_eq!(
            SmtpServer::parse("smtps://mail.example.com?tls=required").unwrap_err(),
            SmtpConfigError::TlsModeWithSmtps
        );
    }

    #[test]
    fn an_unknown_parameter_is_refused() {
        assert_eq!(
            SmtpServer::parse("smtp://mail.example.com?timeout=5").unwrap_err(),
            SmtpConfigError::UnknownParameter("timeout".into())
        );
    }

    #[test]
    fn a_path_is_refused() {
        assert!(matches!(
            SmtpServer::parse("smtp://mail.example.com/x"),
            Err(SmtpConfigError::UnexpectedPath(_))
        ));
    }

    #[test]
    fn an_unparsable_url_error_does_not_echo_the_url() {
        let err = SmtpServer::parse("smtp://user:secret@:25").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_password_is_hidden_in_debug_output() {
        let server = server("smtps://user:hunter2secret@mail.example.com");
        let debug = format!("{server:?}");
        assert!(!debug.contains("hunter2secret"), "{debug}");
        assert!(debug.contains("user"), "{debug}");
    }

    #[test]
    fn without_a_url_smtp_is_not_configured() {
        assert!(settings(&["--smtp-from", "noreply@example.com"])
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_url_without_a_from_address_is_refused() {
        assert_eq!(
            settings(&["--smtp-url", "smtp://127.0.0.1:2525"]).unwrap_err(),
            SmtpConfigError::MissingFrom
        );
    }

    #[test]
    fn a_from_address_with_a_display_name_is_accepted() {
        let settings = settings(&[
            "--smtp-url",
            "smtp://127.0.0.1:2525",
            "--smtp-from",
            "Potentia <noreply@example.com>",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.from.name.as_deref(), Some("Potentia"));
        assert_eq!(settings.from.email.to_string(), "noreply@example.com");
    }

    #[test]
    fn a_malformed_from_address_is_refused() {
        assert_eq!(
            settings(&[
                "--smtp-url",
                "smtp://127.0.0.1:2525",
                "--smtp-from",
                "not an address",
            ])
            .unwrap_err(),
            SmtpConfigError::BadFrom("not an address".into())
        );
    }

    #[test]
    fn defaults_poll_every_five_seconds_and_back_off_from_30_s_to_an_hour() {
        let settings = settings(&[
            "--smtp-url",
            "smtp://127.0.0.1:2525",
            "--smtp-from",
            "noreply@example.com",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.poll_interval, Duration::from_secs(5));
        assert_eq!(settings.max_attempts, DEFAULT_MAX_ATTEMPTS as i32);
        assert_eq!(settings.retry.base, Duration::from_secs(30));
        assert_eq!(settings.retry.cap, Duration::from_secs(3600));
    }

    #[test]
    fn zero_max_attempts_is_refused() {
        assert_eq!(
            settings(&[
                "--smtp-url",
                "smtp://127.0.0.1:2525",
                "--smtp-from",
                "noreply@example.com",
                "--smtp-max-attempts",
                "0",
            ])
            .unwrap_err(),
            SmtpConfigError::Zero {
                name: "POTENTIA_SMTP_MAX_ATTEMPTS"
            }
        );
    }

    #[test]
    fn a_retry_cap_below_the_base_is_refused() {
        assert_eq!(
            settings(&[
                "--smtp-url",
                "smtp://127.0.0.1:2525",
                "--smtp-from",
                "noreply@example.com",
                "--smtp-retry-base-secs",
                "60",
                "--smtp-retry-max-secs",
                "30",
            ])
            .unwrap_err(),
            SmtpConfigError::RetryCapBelowBase
        );
    }
}
