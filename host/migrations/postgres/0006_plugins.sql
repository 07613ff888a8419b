-- Every plugin that was ever registered or bound, by sha256 of its exact
-- bytes, so that any recorded decision can be re-run years later. Rows are
-- only inserted: the service role may not change or delete them, and the
-- database itself checks that the key is the hash of the bytes.
CREATE TABLE plugins (
    sha256        TEXT        PRIMARY KEY,
    name          TEXT        NOT NULL,
    version       TEXT        NOT NULL,
    wit_version   TEXT        NOT NULL,
    bytes         BYTEA       NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    -- Who put it here: a person, or `config` for a binding in the config file.
    registered_by TEXT        NOT NULL,
    -- The SSH signer (principal and key fingerprint) when it came signed.
    signer        TEXT,
    CONSTRAINT plugins_sha256_is_hash_of_bytes CHECK (sha256 = encode(sha256(bytes), 'hex'))
);

GRANT SELECT, INSERT ON plugins TO actiongate_service;
