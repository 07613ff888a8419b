-- Bindings: which plugin decides which action kinds. The one source of
-- truth for every replica: config-file bindings, admin changes and
-- approved four-eyes changes all land here. One row per change, never
-- updated or deleted: a pattern's binding is its newest row, and the rows
-- before it are its history. Each row names the evidence event that
-- recorded it, and may only name plugins whose bytes are stored.
CREATE TABLE bindings (
    id           BIGSERIAL   PRIMARY KEY,
    pattern      TEXT        NOT NULL CHECK (pattern <> ''),
    sha256       TEXT        NOT NULL REFERENCES plugins (sha256),
    -- A shadow plugin: evaluated and recorded beside the live one, never enforced.
    shadow       TEXT        REFERENCES plugins (sha256),
    -- `config` (the config file, at start), `admin` (a policy admin, directly)
    -- or `approval` (a four-eyes change, once approved).
    source       TEXT        NOT NULL CHECK (source IN ('config', 'admin', 'approval')),
    -- A person's email, or `config`.
    changed_by   TEXT        NOT NULL,
    -- The `actiongate.bind` action that approved it; applied at most once.
    approval     TEXT        UNIQUE REFERENCES actions (id),
    -- The `binding-changed` event, committed before this row.
    evidence_seq BIGINT      NOT NULL CHECK (evidence_seq >= 0),
    changed_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX bindings_pattern ON bindings (pattern, id);

CREATE FUNCTION bindings_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bindings are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER bindings_append_only BEFORE UPDATE OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION bindings_refuse_change();
CREATE TRIGGER bindings_no_truncate BEFORE TRUNCATE ON bindings
    FOR EACH STATEMENT EXECUTE FUNCTION bindings_refuse_change();

GRANT SELECT, INSERT ON bindings TO actiongate_service;
GRANT USAGE ON SEQUENCE bindings_id_seq TO actiongate_service;

-- The host's own agent. Four-eyes binding changes are its actions (on behalf
-- of the admin who asked), so they go through the one approval flow. It has
-- no API key, and this row keeps `agent create actiongate` from making one.
INSERT INTO agents (id, owner, attributes, created_at)
VALUES ('actiongate', 'actiongate', '{"role":"host"}', now())
ON CONFLICT (id) DO NOTHING;
