//! The audit log (`system_audit`): one row for every mutation, written in the mutation's own
//! transaction so that an audited change and its audit row commit or fail together.

use serde_json::Value;
use uuid::Uuid;

/// One audited mutation.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor_id: Option<Uuid>,
    /// Dotted verb, e.g. `user.update`, `auth.refresh`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    pub fn new(action: &'a str, target_type: &'a str, target_id: impl ToString) -> Self {
        Self {
            actor_id: None,
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            before: None,
            after: None,
            request_id: None,
        }
    }

    pub fn actor(mut self, actor_id: Uuid) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    pub fn before(mut self, value: Value) -> Self {
        self.before = Some(value);
        self
    }

    pub fn after(mut self, value: Value) -> Self {
        self.after = Some(value);
        self
    }

    pub fn request(mut self, request_id: Option<&'a str>) -> Self {
        self.request_id = request_id;
        self
    }
}

/// Appends an entry to the audit log.
pub async fn record<'e>(db: impl sqlx::PgExecutor<'e>, entry: AuditEntry<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into system_audit (actor_id, action, target_type, target_id, before, after, request_id)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        entry.actor_id,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.before,
        entry.after,
        entry.request_id,
    )
    .execute(db)
    .await?;
    Ok(())
}
