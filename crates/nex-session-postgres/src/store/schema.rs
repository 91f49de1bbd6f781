//! The tables: created on open when missing (under an advisory lock, so app
//! instances starting together do not race), their version checked otherwise.

use nex_session_core::StoreError;

use crate::pool::{Lease, Pool};

/// The schema version this build creates and reads.
const SCHEMA_VERSION: i32 = 1;
/// Serialises schema creation between app instances (an arbitrary constant: "nexs").
const SCHEMA_LOCK: i64 = 0x6e65_7873;

/// A database without the schema, opened with `create_schema: false`.
#[derive(Debug, thiserror::Error)]
#[error("this PostgreSQL database has no nex-session schema (table nex_session_schema); nothing was created")]
struct NoSchema;

/// A database whose schema is newer than this build.
#[derive(Debug, thiserror::Error)]
#[error("session schema version {0} in PostgreSQL is not one this nex-session knows (up to {SCHEMA_VERSION})")]
struct NewerSchema(i32);

/// Makes sure the database holds a schema this build reads: created first when
/// there is none and `create` is set; a database without one is refused
/// otherwise, and one with a newer version always.
pub(super) async fn prepare(pool: &Pool, create: bool) -> Result<(), StoreError> {
    let version = match create {
        true => pool.write(create_schema).await?,
        false => pool
            .read(|mut c| async move {
                let version = schema_version(&mut c).await?;
                Ok((c, version))
            })
            .await?
            .ok_or_else(|| StoreError::Unavailable(Box::new(NoSchema)))?,
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(Box::new(NewerSchema(version))));
    }
    Ok(())
}

/// Reads the schema version, creating the schema first when there is none. A
/// database that has it runs no DDL at all, so the app's role needs no `CREATE`
/// privilege when a DBA made the tables.
async fn create_schema(mut c: Lease<'_>) -> Result<(Lease<'_>, i32), tokio_postgres::Error> {
    if let Some(version) = schema_version(&mut c).await? {
        return Ok((c, version));
    }
    // Under the lock, so instances starting together create it one after the other.
    c.batch(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA}")).await?;
    let version = schema_version(&mut c).await?.unwrap_or(SCHEMA_VERSION);
    Ok((c, version))
}

/// The recorded schema version, `None` when there is no schema yet.
async fn schema_version(c: &mut Lease<'_>) -> Result<Option<i32>, tokio_postgres::Error> {
    let exists = c.query_opt("SELECT 1 WHERE to_regclass('nex_session_schema') IS NOT NULL", &[]).await?;
    if exists.is_none() {
        return Ok(None);
    }
    let row = c.query_opt("SELECT max(version) FROM nex_session_schema", &[]).await?;
    match row {
        Some(row) => row.try_get::<_, Option<i32>>(0),
        None => Ok(None),
    }
}

/// The schema, as in the docs of [`PostgresStore`](crate::PostgresStore), each statement idempotent.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS nex_sessions (
        key bytea PRIMARY KEY,
        expires_at bigint NOT NULL
    );
    CREATE INDEX IF NOT EXISTS nex_sessions_expires_at ON nex_sessions (expires_at);
    CREATE TABLE IF NOT EXISTS nex_session_fields (
        key bytea NOT NULL REFERENCES nex_sessions (key) ON UPDATE CASCADE ON DELETE CASCADE,
        field text NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (key, field)
    );
    CREATE TABLE IF NOT EXISTS nex_session_users (
        store_key bytea PRIMARY KEY REFERENCES nex_sessions (key) ON UPDATE CASCADE ON DELETE CASCADE,
        user_id text NOT NULL
    );
    CREATE INDEX IF NOT EXISTS nex_session_users_user_id ON nex_session_users (user_id);
    CREATE TABLE IF NOT EXISTS nex_session_schema (version integer NOT NULL);
    INSERT INTO nex_session_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM nex_session_schema);";
