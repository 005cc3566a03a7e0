//! PostgreSQL as the peer: the schema (beds with state and holder, a request-id table for
//! idempotent retries), the hold and resolve transactions as two plpgsql functions, and a
//! session per client (one connection each, as pgbench does).
//!
//! A hold is one round trip and one transaction (autocommit): the request id is looked up
//! (a retry returns the hold it made), a free bed of the ward is picked with
//! `FOR UPDATE SKIP LOCKED`, marked held, and the request id remembered; the commit waits
//! for the WAL fsync (`synchronous_commit = on`). No free bed: NULL and nothing written
//! (ninety does not remember refusals either). A resolve checks the request id, moves the
//! bed held → free (release) or held → occupied (confirm) if it is still this hold's, and
//! remembers the request id.

use crate::workload::{Hold, HoldOutcome, Session, Ward};
use anyhow::Context;
use tokio_postgres::{Client, NoTls, Statement};

/// Drops and makes the schema, loads one free bed row per staffed bed.
const SCHEMA_SQL: &str = r#"
DROP FUNCTION IF EXISTS hold_bed, resolve_hold;
DROP TABLE IF EXISTS beds, requests;
DROP SEQUENCE IF EXISTS hold_seq;
-- state: 0 free, 1 held, 2 occupied. Only bed_id and ward_id are indexed, so a hold's
-- update can be a HOT update.
CREATE TABLE beds (
    bed_id int PRIMARY KEY,
    ward_id int NOT NULL,
    state smallint NOT NULL DEFAULT 0,
    hold_id bigint,
    patient text,
    held_until timestamptz
);
CREATE INDEX beds_ward ON beds (ward_id);
CREATE TABLE requests (
    request_id text PRIMARY KEY,
    hold_id bigint NOT NULL
);
CREATE SEQUENCE hold_seq;

-- A hold id carries its bed in the low 32 bits, so a resolve finds the bed by key.
CREATE FUNCTION hold_bed(p_request text, p_ward int, p_patient text, p_ttl_ms bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_bed int;
    v_hold bigint;
BEGIN
    SELECT hold_id INTO v_hold FROM requests WHERE request_id = p_request;
    IF FOUND THEN
        RETURN v_hold;
    END IF;
    SELECT bed_id INTO v_bed FROM beds
        WHERE ward_id = p_ward AND state = 0
        LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_hold := (nextval('hold_seq') << 32) | v_bed;
    UPDATE beds SET state = 1, hold_id = v_hold, patient = p_patient,
        held_until = now() + p_ttl_ms * interval '1 millisecond'
        WHERE bed_id = v_bed;
    INSERT INTO requests (request_id, hold_id) VALUES (p_request, v_hold);
    RETURN v_hold;
END $$;

CREATE FUNCTION resolve_hold(p_request text, p_hold bigint, p_confirm bool)
RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM requests WHERE request_id = p_request;
    IF FOUND THEN
        RETURN true;
    END IF;
    IF p_confirm THEN
        UPDATE beds SET state = 2, held_until = NULL
            WHERE bed_id = (p_hold & 4294967295)::int AND hold_id = p_hold AND state = 1;
    ELSE
        UPDATE beds SET state = 0, hold_id = NULL, patient = NULL, held_until = NULL
            WHERE bed_id = (p_hold & 4294967295)::int AND hold_id = p_hold AND state = 1;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO requests (request_id, hold_id) VALUES (p_request, p_hold);
    RETURN true;
END $$;
"#;

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("postgres connection: {e}");
        }
    });
    Ok(client)
}

/// Makes the schema and loads the beds: one row per staffed bed of `wards`.
pub async fn load(url: &str, wards: &[Ward]) -> anyhow::Result<()> {
    let c = connect(url).await?;
    c.batch_execute(SCHEMA_SQL)
        .await
        .context("creating the PostgreSQL schema")?;
    let ward_of_bed: Vec<i32> = wards
        .iter()
        .flat_map(|w| std::iter::repeat_n(w.id as i32, w.staffed_beds as usize))
        .collect();
    c.execute(
        "INSERT INTO beds (bed_id, ward_id) \
         SELECT n::int, w FROM unnest($1::int[]) WITH ORDINALITY AS t(w, n)",
        &[&ward_of_bed],
    )
    .await
    .context("loading the beds")?;
    // One statement per call: VACUUM may not run in the implicit transaction of a batch.
    for sql in ["VACUUM ANALYZE beds", "ANALYZE requests", "CHECKPOINT"] {
        c.batch_execute(sql)
            .await
            .with_context(|| format!("loading the beds: {sql}"))?;
    }
    Ok(())
}

/// One client's connection with its two prepared statements.
pub struct PgSession {
    client: Client,
    hold: Statement,
    resolve: Statement,
}

impl PgSession {
    pub async fn open(url: &str) -> anyhow::Result<PgSession> {
        let client = connect(url).await?;
        let hold = client.prepare("SELECT hold_bed($1, $2, $3, $4)").await?;
        let resolve = client.prepare("SELECT resolve_hold($1, $2, $3)").await?;
        Ok(PgSession {
            client,
            hold,
            resolve,
        })
    }
}

impl Session for PgSession {
    async fn hold(
        &mut self,
        request_id: String,
        ward: u32,
        patient: String,
        ttl_ms: u64,
    ) -> anyhow::Result<HoldOutcome> {
        let row = self
            .client
            .query_one(
                &self.hold,
                &[&request_id, &(ward as i32), &patient, &(ttl_ms as i64)],
            )
            .await?;
        let hold: Option<i64> = row.try_get(0)?;
        Ok(match hold {
            Some(h) => HoldOutcome::Granted(Hold {
                token: h.to_string(),
            }),
            None => HoldOutcome::NoCapacity,
        })
    }

    async fn resolve(
        &mut self,
        request_id: String,
        hold: Hold,
        confirm: bool,
    ) -> anyhow::Result<bool> {
        let id: i64 = hold.token.parse().context("a PostgreSQL hold id")?;
        let row = self
            .client
            .query_one(&self.resolve, &[&request_id, &id, &confirm])
            .await?;
        Ok(row.try_get(0)?)
    }

    fn retries(&self) -> u64 {
        0
    }
}
