-- Evidence log: append-only tables for events, integrated tree hashes and
-- signed checkpoints. Nothing here is ever updated or deleted.

CREATE TABLE evidence_events (
    -- Gap-free leaf index, assigned under an advisory lock by the writer.
    seq         BIGINT      PRIMARY KEY CHECK (seq >= 0),
    occurred_at TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    action_id   UUID,
    actor_kind  TEXT        NOT NULL,
    actor_id    TEXT        NOT NULL,
    -- The leaf: RFC 8785 canonical JSON of the whole event, seq included.
    canonical   TEXT        NOT NULL,
    -- RFC 6962 leaf hash: SHA-256(0x00 || canonical).
    leaf_hash   BYTEA       NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX evidence_events_action_id ON evidence_events (action_id) WHERE action_id IS NOT NULL;

-- Merkle tree nodes in Go tlog's stored-hash order (sumdb/tlog StoredHashIndex).
-- Written only by the integrator, together with the checkpoint that covers them.
CREATE TABLE evidence_tree_hashes (
    idx  BIGINT PRIMARY KEY CHECK (idx >= 0),
    hash BYTEA  NOT NULL CHECK (length(hash) = 32)
);

-- C2SP tlog-checkpoint signed notes, one per integrated tree size.
CREATE TABLE evidence_checkpoints (
    size      BIGINT      PRIMARY KEY CHECK (size >= 0),
    root_hash BYTEA       NOT NULL CHECK (length(root_hash) = 32),
    note      TEXT        NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION evidence_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evidence is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER evidence_events_append_only BEFORE UPDATE OR DELETE ON evidence_events
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER evidence_events_no_truncate BEFORE TRUNCATE ON evidence_events
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER evidence_tree_hashes_append_only BEFORE UPDATE OR DELETE ON evidence_tree_hashes
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER evidence_tree_hashes_no_truncate BEFORE TRUNCATE ON evidence_tree_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER evidence_checkpoints_append_only BEFORE UPDATE OR DELETE ON evidence_checkpoints
    FOR EACH ROW EXECUTE FUNCTION evidence_refuse_change();
CREATE TRIGGER evidence_checkpoints_no_truncate BEFORE TRUNCATE ON evidence_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_refuse_change();

-- The service's role: INSERT and SELECT only. Roles are cluster-global while
-- migrations run per database (and concurrently under #[sqlx::test]), so
-- creating it must tolerate both "already there" and a racing creator.
-- NOLOGIN: grant it to the login role the service connects as
-- (GRANT actiongate_service TO actiongate_app), see evidence/mod.rs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'actiongate_service') THEN
        CREATE ROLE actiongate_service NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

GRANT SELECT, INSERT ON evidence_events, evidence_tree_hashes, evidence_checkpoints
    TO actiongate_service;
-- So that a service connecting with this role can check that migrations are applied.
GRANT SELECT ON _sqlx_migrations TO actiongate_service;

-- One-statement append: the lock, the seq and the rows in a single round
-- trip, so under autocommit the append lock is held only while the server
-- works and flushes, never across client round trips. Each event arrives as
-- its canonical JSON split around the two values only known here (occurred_at
-- is passed in; seq is assigned): head || occurred_at || middle || seq || tail.
-- The writer rebuilds the same text and checks the returned leaf hashes.
CREATE FUNCTION evidence_append(
    p_occurred_at TIMESTAMPTZ,
    p_at_text     TEXT,
    p_head        TEXT[],
    p_middle      TEXT[],
    p_tail        TEXT[],
    p_kind        TEXT[],
    p_action_id   TEXT[],
    p_actor_kind  TEXT[],
    p_actor_id    TEXT[]
) RETURNS TABLE (seq BIGINT, leaf_hash BYTEA)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    first BIGINT;
BEGIN
    -- Same key as the client-side path (store/postgres.rs APPEND_LOCK).
    PERFORM pg_advisory_xact_lock(7018683433663161345);
    -- VOLATILE: this statement takes a fresh snapshot, after the lock.
    SELECT COALESCE(MAX(e.seq) + 1, 0) INTO first FROM evidence_events e;
    RETURN QUERY
    INSERT INTO evidence_events AS e
        (seq, occurred_at, kind, action_id, actor_kind, actor_id, canonical, leaf_hash)
    SELECT first + t.ord - 1, p_occurred_at, t.kind, t.action_id::uuid, t.actor_kind, t.actor_id,
           c.canonical, sha256('\x00'::bytea || convert_to(c.canonical, 'UTF8'))
    FROM unnest(p_head, p_middle, p_tail, p_kind, p_action_id, p_actor_kind, p_actor_id)
         WITH ORDINALITY AS t(head, middle, tail, kind, action_id, actor_kind, actor_id, ord)
    CROSS JOIN LATERAL
         (SELECT t.head || p_at_text || t.middle || (first + t.ord - 1)::text || t.tail AS canonical) c
    RETURNING e.seq, e.leaf_hash;
END
$$;
