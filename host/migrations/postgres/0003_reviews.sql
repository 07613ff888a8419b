-- Reviews: every human decision on a held action, bound to the digest of
-- the action version it was given for. Never updated or deleted.
CREATE TABLE reviews (
    id         BIGSERIAL   PRIMARY KEY,
    action_id  TEXT        NOT NULL REFERENCES actions (id),
    approver   TEXT        NOT NULL,
    decision   TEXT        NOT NULL CHECK (decision IN ('approve', 'deny', 'modify')),
    reason     TEXT,
    digest     TEXT        NOT NULL,
    channel    TEXT        NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX reviews_action ON reviews (action_id, id);

-- Reminder and escalation happen once each, whichever replica gets there first.
ALTER TABLE actions ADD COLUMN reminded_at TIMESTAMPTZ;
ALTER TABLE actions ADD COLUMN escalated_at TIMESTAMPTZ;

GRANT SELECT, INSERT ON reviews TO actiongate_service;
GRANT USAGE ON SEQUENCE reviews_id_seq TO actiongate_service;

CREATE FUNCTION reviews_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reviews are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION reviews_refuse_change();
