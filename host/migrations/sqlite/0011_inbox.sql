-- The web inbox's sign-ins and sessions (see the Postgres migration of the
-- same number): only hashes of the browser's secrets are keys here.
CREATE TABLE inbox_logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE TABLE inbox_sessions (
    id_hash    TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    idp_groups TEXT,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at   TEXT
);

CREATE INDEX inbox_logins_expires ON inbox_logins (expires_at);
CREATE INDEX reviews_approver ON reviews (approver, id);
