//! Cursor pagination for every list: `?limit=` (1–100, default 50) and `?cursor=`, answered as
//! `{items, next_cursor}`. Cursors are keyset positions `(created_at, id)`, so pages neither skip
//! nor repeat rows when others are inserted meanwhile.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Position>,
}

/// Where a page ends: the sort key of its last item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl PageParams {
    pub fn validate(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = self.cursor.as_deref().map(Position::decode).transpose()?;
        Ok(PageRequest { limit, after })
    }
}

impl PageRequest {
    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    pub fn after_created_at(&self) -> Option<DateTime<Utc>> {
        self.after.map(|p| p.created_at)
    }

    pub fn after_id(&self) -> Option<Uuid> {
        self.after.map(|p| p.id)
    }
}

impl Position {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    pub fn decode(cursor: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Self {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The page's entries, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows in order, `position` giving each row's key.
    pub fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        position: impl Fn(&T) -> Position,
    ) -> Self {
        let more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| position(last).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips() {
        let position = Position {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Position::decode(&position.encode()).unwrap(), position);
    }

    #[test]
    fn garbage_cursors_and_limits_are_refused() {
        for cursor in ["", "abc", "MTIz", &URL_SAFE_NO_PAD.encode("1|not-a-uuid")] {
            let params = PageParams {
                limit: None,
                cursor: Some(cursor.to_owned()),
            };
            assert!(params.validate().is_err(), "{cursor:?}");
        }
        for limit in [0, 101] {
            assert!(PageParams {
                limit: Some(limit),
                cursor: None
            }
            .validate()
            .is_err());
        }
    }

    #[test]
    fn a_full_page_has_a_next_cursor_and_a_short_one_has_none() {
        let request = PageParams {
            limit: Some(2),
            cursor: None,
        }
        .validate()
        .unwrap();
        let at = |i: i64| Position {
            created_at: DateTime::from_timestamp(i, 0).unwrap(),
            id: Uuid::nil(),
        };
        let page = Page::from_rows(vec![1, 2, 3], &request, |i| at(*i));
        assert_eq!(page.items, [1, 2]);
        assert_eq!(
            Position::decode(page.next_cursor.as_deref().unwrap()).unwrap(),
            at(2)
        );
        assert!(Page::from_rows(vec![1, 2], &request, |i| at(*i))
            .next_cursor
            .is_none());
    }
}
