-- The sweeper's question ("which spent grants have no recorded outcome?")
-- read every action still allowed or approved (0015), and that set grows
-- for ever: an agent that never spends its grant (one that acts on the
-- decision without an executor checking the grant) leaves its action
-- allowed. With 432,000 grants, 133,000 of them for actions still
-- allowed, the question took 114-132 ms, and the sweeper asks every second.
--
-- A grant is settled once its action leaves allowed and approved (executed,
-- or any other end): nothing will ever run on it. The trigger below keeps
-- that for every writer of an action's state, and the sweeper's index holds
-- only grants spent and not settled: the runs whose outcome is awaited.
--
-- Rows already there are settled (the column's first default, which costs
-- no rewrite), then those whose action can still run are opened again.
ALTER TABLE grants ADD COLUMN settled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE grants ALTER COLUMN settled SET DEFAULT FALSE;
UPDATE grants g SET settled = FALSE
FROM actions a
WHERE a.id = g.action_id AND a.state IN ('allowed', 'approved');

CREATE FUNCTION grants_settle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE grants SET settled = TRUE WHERE action_id = NEW.id AND NOT settled;
    RETURN NULL;
END
$$;

CREATE TRIGGER actions_settle_grants AFTER UPDATE OF state ON actions
    FOR EACH ROW
    WHEN (OLD.state IN ('allowed', 'approved') AND NEW.state NOT IN ('allowed', 'approved'))
    EXECUTE FUNCTION grants_settle();

CREATE INDEX grants_awaiting_outcome ON grants (consumed_at)
    WHERE consumed_at IS NOT NULL AND NOT settled;
DROP INDEX actions_runnable;
