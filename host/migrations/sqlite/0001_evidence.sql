-- Evidence log: append-only tables for events, integrated tree hashes and
-- signed checkpoints. Nothing here is ever updated or deleted.

CREATE TABLE evidence_events (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 0),
    occurred_at TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    action_id   TEXT,
    actor_kind  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    canonical   TEXT    NOT NULL,
    leaf_hash   BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE INDEX evidence_events_action_id ON evidence_events (action_id) WHERE action_id IS NOT NULL;

CREATE TABLE evidence_tree_hashes (
    idx  INTEGER PRIMARY KEY CHECK (idx >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE evidence_checkpoints (
    size      INTEGER PRIMARY KEY CHECK (size >= 0),
    root_hash BLOB    NOT NULL CHECK (length(root_hash) = 32),
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL
);

-- SQLite has no TRUNCATE; its DELETE-all optimisation is disabled when a
-- DELETE trigger exists, so these cover it.
CREATE TRIGGER evidence_events_no_update BEFORE UPDATE ON evidence_events
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: UPDATE on evidence_events refused'); END;
CREATE TRIGGER evidence_events_no_delete BEFORE DELETE ON evidence_events
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: DELETE on evidence_events refused'); END;
CREATE TRIGGER evidence_tree_hashes_no_update BEFORE UPDATE ON evidence_tree_hashes
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: UPDATE on evidence_tree_hashes refused'); END;
CREATE TRIGGER evidence_tree_hashes_no_delete BEFORE DELETE ON evidence_tree_hashes
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: DELETE on evidence_tree_hashes refused'); END;
CREATE TRIGGER evidence_checkpoints_no_update BEFORE UPDATE ON evidence_checkpoints
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: UPDATE on evidence_checkpoints refused'); END;
CREATE TRIGGER evidence_checkpoints_no_delete BEFORE DELETE ON evidence_checkpoints
BEGIN SELECT RAISE(ABORT, 'evidence is append-only: DELETE on evidence_checkpoints refused'); END;
