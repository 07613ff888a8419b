-- Appends without holding the append lock across the WAL flush.
--
-- evidence_append (0001) runs under autocommit, so its transaction-scoped
-- append lock is held until its COMMIT has been flushed to disk: every batch
-- waited for the previous batch's fsync, and throughput was one batch per
-- flush. This procedure commits the batch asynchronously (the commit record
-- is written, not yet flushed) and so releases the lock at once; then it
-- commits a second, empty transaction that has a transaction id, which
-- synchronous_commit makes wait until the WAL is flushed through its own
-- commit record, and so through the batch before it. CALL returns only then.
-- Concurrent batches' flushes merge (group commit) instead of queueing.
--
-- Durability is unchanged for every caller: an append returns after its rows
-- are flushed. What changes is visibility: other sessions can read a batch up
-- to one flush before it is durable. Nothing durable can depend on such a
-- read, because WAL is flushed in order: any later synchronous commit (a
-- checkpoint, a grant, an action's state) flushes the batch first. A crash in
-- that window loses the whole tail of the log with it, so seqs stay dense.
--
-- Must be CALLed outside a transaction block (it commits).
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
    INOUT first_seq BIGINT DEFAULT NULL,
    INOUT leaves    BYTEA[] DEFAULT NULL
)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- evidence_append (0001) takes the append lock, which this transaction
    -- holds until its COMMIT below, assigns the seqs and inserts the rows.
    SELECT min(a.seq), array_agg(a.leaf_hash ORDER BY a.seq) INTO first_seq, leaves
    FROM evidence_append(p_occurred_at, p_at_text, p_head, p_middle, p_tail, p_kind,
                         p_action_id, p_actor_kind, p_actor_id) AS a;
    -- Releases the append lock; the commit record is not yet flushed.
    COMMIT;
    -- An empty transaction with an id: its synchronous commit flushes the
    -- WAL through the batch above before CALL returns.
    PERFORM pg_current_xact_id();
END
$$;
