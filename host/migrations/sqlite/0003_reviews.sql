-- Reviews: every human decision on a held action, bound to the digest of
-- the action version it was given for. Never updated or deleted.
CREATE TABLE reviews (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id  TEXT    NOT NULL REFERENCES actions (id),
    approver   TEXT    NOT NULL,
    decision   TEXT    NOT NULL CHECK (decision IN ('approve', 'deny', 'modify')),
    reason     TEXT,
    digest     TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    at         TEXT    NOT NULL
);
CREATE INDEX reviews_action ON reviews (action_id, id);

CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;

ALTER TABLE actions ADD COLUMN reminded_at TEXT;
ALTER TABLE actions ADD COLUMN escalated_at TEXT;
