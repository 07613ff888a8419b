-- Every plugin that was ever registered or bound, by sha256 of its exact
-- bytes, so that any recorded decision can be re-run years later. Rows are
-- only inserted.
CREATE TABLE plugins (
    sha256        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    wit_version   TEXT NOT NULL,
    bytes         BLOB NOT NULL,
    registered_at TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    signer        TEXT
);

CREATE TRIGGER plugins_no_update BEFORE UPDATE ON plugins
BEGIN SELECT RAISE(ABORT, 'plugins are insert-only'); END;
CREATE TRIGGER plugins_no_delete BEFORE DELETE ON plugins
BEGIN SELECT RAISE(ABORT, 'plugins are insert-only'); END;
