-- The Teams messages (cards) posted for each held action, so that later
-- notifications update them in place. One card per action and conversation.
CREATE TABLE teams_activities (
    action_id       TEXT        NOT NULL,
    conversation_id TEXT        NOT NULL,
    service_url     TEXT        NOT NULL,
    activity_id     TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (action_id, conversation_id)
);

GRANT SELECT, INSERT ON teams_activities TO actiongate_service;
