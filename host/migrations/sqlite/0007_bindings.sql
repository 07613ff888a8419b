-- Bindings: which plugin decides which action kinds. The one source of
-- truth: config-file bindings, admin changes and approved four-eyes changes
-- all land here. One row per change, never updated or deleted: a pattern's
-- binding is its newest row. Rows may only name stored plugins.
CREATE TABLE bindings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    pattern      TEXT    NOT NULL CHECK (pattern <> ''),
    sha256       TEXT    NOT NULL REFERENCES plugins (sha256),
    shadow       TEXT    REFERENCES plugins (sha256),
    source       TEXT    NOT NULL CHECK (source IN ('config', 'admin', 'approval')),
    changed_by   TEXT    NOT NULL,
    approval     TEXT    UNIQUE REFERENCES actions (id),
    evidence_seq INTEGER NOT NULL CHECK (evidence_seq >= 0),
    changed_at   TEXT    NOT NULL
);
CREATE INDEX bindings_pattern ON bindings (pattern, id);

CREATE TRIGGER bindings_no_update BEFORE UPDATE ON bindings
BEGIN SELECT RAISE(ABORT, 'bindings are append-only'); END;
CREATE TRIGGER bindings_no_delete BEFORE DELETE ON bindings
BEGIN SELECT RAISE(ABORT, 'bindings are append-only'); END;

-- The host's own agent: four-eyes binding changes are its actions. It has
-- no API key, and this row keeps `agent create actiongate` from making one.
INSERT INTO agents (id, owner, attributes, created_at)
VALUES ('actiongate', 'actiongate', '{"role":"host"}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
ON CONFLICT (id) DO NOTHING;
