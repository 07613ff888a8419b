-- The web inbox's sign-ins and sessions. A sign-in in flight holds what the
-- callback must check (nonce, PKCE verifier) under the hash of its `state`;
-- it is taken out once, by the callback. A session is found by the hash of
-- the browser's cookie, never by the cookie itself; it ends at expires_at
-- or at logout (ended_at), whichever comes first.
CREATE TABLE inbox_logins (
    state_hash    TEXT        PRIMARY KEY,
    nonce         TEXT        NOT NULL,
    pkce_verifier TEXT        NOT NULL,
    return_to     TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE inbox_sessions (
    id_hash    TEXT        PRIMARY KEY,
    email      TEXT        NOT NULL,
    -- The provider's group claim (a JSON array), when one is configured.
    idp_groups TEXT,
    csrf_token TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);

CREATE INDEX inbox_logins_expires ON inbox_logins (expires_at);
CREATE INDEX reviews_approver ON reviews (approver, id);

GRANT SELECT, INSERT, DELETE ON inbox_logins TO actiongate_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON inbox_sessions TO actiongate_service;
