-- MCP gateway: the held action an agent's tool call (agent, tool, sha256
-- of the canonical arguments) is attached to, so an identical retry
-- reattaches to it instead of asking the approvers again. Not evidence:
-- the action and its events are; a row only points at the newest one.
CREATE TABLE mcp_calls (
    agent_id    TEXT        NOT NULL,
    call_digest TEXT        NOT NULL,
    action_id   TEXT        NOT NULL REFERENCES actions (id),
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, call_digest)
);

GRANT SELECT, INSERT, UPDATE ON mcp_calls TO actiongate_service;
