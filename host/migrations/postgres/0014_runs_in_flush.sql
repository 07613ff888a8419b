-- A run the host performs itself (the MCP gateway's tools/call) costs one
-- durable commit for its decision and one for its outcome, instead of four.
--
-- evidence_append_flushed (0008-0010) gains two things, both written by the
-- transaction that waits for the WAL flush, so neither is visible before
-- the batch's events are durable:
--   * g_consumed_at: a grant may be written already consumed. The gateway
--     claims the grant of a call allowed at once in the decision's own
--     commit, so no second request can claim it and the run needs no claim
--     commit of its own. NULL keeps the grant open (every other caller).
--   * m_*: state moves of existing actions (`WHERE state = from`, so two
--     replicas racing move it once), e.g. allowed -> executed beside the
--     `executed` event, each followed by a NOTIFY on the actions channel
--     (delivered at that commit). `moved` returns the ids that moved.
-- Everything else is unchanged from 0010.
--
-- The 0010 procedure stays beside this one: a binary from before 0014 (a
-- replica not yet upgraded, or a rollback) keeps calling it with its 25
-- arguments, while this one takes 30, so each call resolves to one of them.
CREATE PROCEDURE evidence_append_flushed(
    p_occurred_at TIMESTAMPTZ,
    p_at_text     TEXT,
    p_head        TEXT[],
    p_middle      TEXT[],
    p_tail        TEXT[],
    p_kind        TEXT[],
    p_action_id   TEXT[],
    p_actor_kind  TEXT[],
    p_actor_id    TEXT[],
    p_owner       INT[],
    -- The new actions, one element per action, in actions' column order,
    -- then each one's grant (jti NULL when it has none).
    a_id              TEXT[],
    a_agent_id        TEXT[],
    a_idempotency_key TEXT[],
    a_request_hash    TEXT[],
    a_action          TEXT[],
    a_digest          TEXT[],
    a_state           TEXT[],
    a_verdict         TEXT[],
    a_grant_token     TEXT[],
    a_expires_at      TIMESTAMPTZ[],
    a_created_at      TIMESTAMPTZ[],
    a_updated_at      TIMESTAMPTZ[],
    g_jti             TEXT[],
    g_expires_at      TIMESTAMPTZ[],
    g_consumed_at     TIMESTAMPTZ[],
    a_key_hash        TEXT[],
    -- State moves of existing actions, one element per move.
    m_id              TEXT[],
    m_from            TEXT[],
    m_to              TEXT[],
    m_at              TIMESTAMPTZ[],
    INOUT first_seq BIGINT DEFAULT NULL,
    INOUT leaves    BYTEA[] DEFAULT NULL,
    INOUT created   TEXT[] DEFAULT NULL,
    INOUT refused   INT[] DEFAULT NULL,
    INOUT moved     TEXT[] DEFAULT NULL
)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    refused := '{}';
    -- Plain appends carry no actions: skip what only actions need (each
    -- statement here is planned on every call).
    IF cardinality(a_key_hash) > 0 THEN
        refused := ARRAY(
            SELECT k.i FROM unnest(a_key_hash) WITH ORDINALITY AS k(key_hash, i)
            WHERE k.key_hash IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM api_keys ak JOIN agents ag ON ag.id = ak.subject
                WHERE ak.key_hash = k.key_hash AND ak.role = 'agent'
                  AND ak.revoked_at IS NULL AND ag.revoked_at IS NULL));
    END IF;
    IF cardinality(refused) > 0 THEN
        SELECT array_agg(t.head ORDER BY t.o), array_agg(t.middle ORDER BY t.o),
               array_agg(t.tail ORDER BY t.o), array_agg(t.kind ORDER BY t.o),
               array_agg(t.action_id ORDER BY t.o), array_agg(t.actor_kind ORDER BY t.o),
               array_agg(t.actor_id ORDER BY t.o)
        INTO p_head, p_middle, p_tail, p_kind, p_action_id, p_actor_kind, p_actor_id
        FROM unnest(p_head, p_middle, p_tail, p_kind, p_action_id, p_actor_kind, p_actor_id,
                    p_owner) WITH ORDINALITY
             AS t(head, middle, tail, kind, action_id, actor_kind, actor_id, owner, o)
        WHERE t.owner IS NULL OR t.owner <> ALL (refused);
    END IF;
    -- evidence_append (0001) takes the append lock, which this transaction
    -- holds until its COMMIT below, assigns the seqs and inserts the rows.
    SELECT min(a.seq), array_agg(a.leaf_hash ORDER BY a.seq) INTO first_seq, leaves
    FROM evidence_append(p_occurred_at, p_at_text, p_head, p_middle, p_tail, p_kind,
                         p_action_id, p_actor_kind, p_actor_id) AS a;
    -- Releases the append lock; the commit record is not yet flushed.
    COMMIT;
    -- This transaction's synchronous commit flushes the WAL through the
    -- batch above (and through itself) before CALL returns and before its
    -- actions, grants and moves become visible.
    IF cardinality(a_id) > 0 THEN
        WITH input AS (
            SELECT * FROM unnest(a_id, a_agent_id, a_idempotency_key, a_request_hash, a_action,
                                 a_digest, a_state, a_verdict, a_grant_token, a_expires_at,
                                 a_created_at, a_updated_at, g_jti, g_expires_at,
                                 g_consumed_at) WITH ORDINALITY
                AS t(id, agent_id, idempotency_key, request_hash, action, digest, state, verdict,
                     grant_token, expires_at, created_at, updated_at, jti, grant_expires_at,
                     grant_consumed_at, i)
            WHERE t.i <> ALL (refused)
        ), inserted AS (
            INSERT INTO actions (id, agent_id, idempotency_key, request_hash, action, digest, state,
                                 verdict, grant_token, expires_at, created_at, updated_at)
            SELECT id, agent_id, idempotency_key, request_hash, action, digest, state,
                   verdict, grant_token, expires_at, created_at, updated_at
            FROM input
            ON CONFLICT (agent_id, idempotency_key) DO NOTHING
            RETURNING id
        ), granted AS (
            INSERT INTO grants (jti, action_id, expires_at, consumed_at)
            SELECT i.jti, i.id, i.grant_expires_at, i.grant_consumed_at
            FROM input i JOIN inserted USING (id)
            WHERE i.jti IS NOT NULL
        )
        SELECT array_agg(id) INTO created FROM inserted;
    END IF;
    moved := '{}';
    IF cardinality(m_id) > 0 THEN
        WITH moves AS (
            UPDATE actions a SET state = m.to_state, updated_at = m.at
            FROM unnest(m_id, m_from, m_to, m_at) AS m(id, from_state, to_state, at)
            WHERE a.id = m.id AND a.state = m.from_state
            RETURNING a.id
        )
        SELECT coalesce(array_agg(id), '{}') INTO moved FROM moves;
        -- Also hard-coded as ACTION_CHANNEL (store/actions.rs).
        PERFORM pg_notify('actiongate_actions', id) FROM unnest(moved) AS id;
    END IF;
    -- Makes this transaction write WAL even when it inserted nothing (0010).
    PERFORM pg_logical_emit_message(true, 'actiongate', 'evidence flushed');
END
$$;
