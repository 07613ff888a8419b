-- Passkeys (WebAuthn credentials) per person, and the ceremonies that make
-- and use them. A passkey row is updated only for its sign counter and
-- last use, and marked removed rather than deleted, so the credential id an
-- approval's evidence names can still be looked up.
CREATE TABLE passkeys (
    id            TEXT    PRIMARY KEY,
    person        TEXT    NOT NULL,
    credential_id TEXT    NOT NULL UNIQUE,
    label         TEXT    NOT NULL,
    passkey       TEXT    NOT NULL,
    sign_count    INTEGER NOT NULL,
    created_at    TEXT    NOT NULL,
    last_used_at  TEXT,
    removed_at    TEXT
);
CREATE INDEX passkeys_person ON passkeys (person);

-- One registration or step-up challenge; single use (used_at is set once).
CREATE TABLE passkey_ceremonies (
    id         TEXT PRIMARY KEY,
    person     TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    action_id  TEXT,
    digest     TEXT,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at    TEXT
);
