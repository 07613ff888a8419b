-- Slack: where each action's card was posted (so it can be updated and
-- threaded), and the signatures of interactivity requests already handled
-- (so a captured request cannot be replayed within its 5-minute window).
-- Neither is evidence: reviews themselves are recorded by the gate.

CREATE TABLE slack_messages (
    action_id   TEXT        NOT NULL,
    channel     TEXT        NOT NULL,
    ts          TEXT        NOT NULL,
    -- `occurred_at` of the newest notification rendered on the card; older
    -- ones arriving late are not applied, and a final card is never redrawn.
    rendered_at TIMESTAMPTZ NOT NULL,
    is_final    BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (action_id, channel)
);

CREATE TABLE slack_requests (
    signature TEXT        PRIMARY KEY,
    seen_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX slack_requests_seen_at ON slack_requests (seen_at);

GRANT SELECT, INSERT, UPDATE ON slack_messages TO actiongate_service;
GRANT SELECT, INSERT, DELETE ON slack_requests TO actiongate_service;
