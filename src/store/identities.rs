//! Queries on `identities`.

use diesel::prelude::*;

use super::models::Identity;
use super::schema::identities;
use super::DbConn;
use crate::ids::UserId;

pub fn insert(c: &mut DbConn, id: &UserId, now: i64) -> QueryResult<()> {
    diesel::insert_into(identities::table)
        .values(Identity {
            id: id.to_string(),
            created_at: now,
            deleted_at: None,
            tokens_revoked_at: None,
        })
        .execute(c)
        .map(drop)
}

pub fn get(c: &mut DbConn, id: &UserId) -> QueryResult<Option<Identity>> {
    identities::table
        .find(id.as_str())
        .select(Identity::as_select())
        .get_result(c)
        .optional()
}

/// Sets `tokens_revoked_at` (epoch seconds).
pub fn revoke(c: &mut DbConn, id: &UserId, secs: i64) -> QueryResult<usize> {
    diesel::update(identities::table.find(id.as_str()))
        .set(identities::tokens_revoked_at.eq(secs))
        .execute(c)
}

pub fn delete(c: &mut DbConn, id: &UserId, now: i64) -> QueryResult<usize> {
    diesel::update(identities::table.find(id.as_str()))
        .set(identities::deleted_at.eq(now))
        .execute(c)
}

/// The subset of `ids` that exist and are not deleted.
pub fn live_among(c: &mut DbConn, ids: &[UserId]) -> QueryResult<Vec<UserId>> {
    let ids: Vec<&str> = ids.iter().map(UserId::as_str).collect();
    let live: Vec<String> = identities::table
        .filter(identities::id.eq_any(ids))
        .filter(identities::deleted_at.is_null())
        .select(identities::id)
        .load(c)?;
    Ok(live.into_iter().map(UserId::from).collect())
}
