-- Agents, API keys, actions and grants: the mutable state of the service.
-- Unlike evidence, these rows change (an action moves from pending to
-- approved); every change is also an evidence event.

CREATE TABLE agents (
    id         TEXT        PRIMARY KEY,
    owner      TEXT        NOT NULL,
    -- JSON object of operator-set attributes shown to plugins.
    attributes TEXT        NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Bearer keys, by sha256 only. `subject` is an agent id or a person's email.
CREATE TABLE api_keys (
    key_hash   TEXT        PRIMARY KEY,
    role       TEXT        NOT NULL CHECK (role IN ('agent', 'approver', 'auditor', 'admin')),
    subject    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_subject ON api_keys (role, subject);

CREATE TABLE actions (
    id              TEXT        PRIMARY KEY,
    agent_id        TEXT        NOT NULL REFERENCES agents (id),
    idempotency_key TEXT,
    -- sha256 of the canonical request body: same key with another body is a conflict.
    request_hash    TEXT        NOT NULL,
    -- JSON of the current action (after any modification) and its digest.
    action          TEXT        NOT NULL,
    digest          TEXT        NOT NULL,
    state           TEXT        NOT NULL CHECK (state IN ('allowed', 'denied', 'pending', 'approved', 'expired', 'executed')),
    -- JSON of the verdict that governs the action now.
    verdict         TEXT        NOT NULL,
    grant_token     TEXT,
    expires_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (agent_id, idempotency_key)
);
CREATE INDEX actions_pending ON actions (expires_at) WHERE state = 'pending';

CREATE TABLE grants (
    jti         TEXT        PRIMARY KEY,
    -- Written in the same transaction as the action (or its approval),
    -- before the grant is handed out, so its single use can be enforced.
    action_id   TEXT        NOT NULL REFERENCES actions (id),
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
);

GRANT SELECT, INSERT, UPDATE ON agents, api_keys, actions, grants TO actiongate_service;
