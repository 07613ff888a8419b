-- The sweeper's question ("which spent grants have no recorded outcome?")
-- read every action still allowed or approved (0015), and that set grows
-- for ever: an agent that never spends its grant leaves its action allowed.
-- A grant is settled once its action leaves allowed and approved; the
-- trigger keeps that for every writer of an action's state, and the
-- sweeper's index holds only grants spent and not settled. As 0016 for
-- Postgres.
ALTER TABLE grants ADD COLUMN settled BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE grants SET settled = TRUE
WHERE action_id IN (SELECT id FROM actions WHERE state NOT IN ('allowed', 'approved'));

CREATE TRIGGER actions_settle_grants AFTER UPDATE OF state ON actions
    FOR EACH ROW
    WHEN OLD.state IN ('allowed', 'approved') AND NEW.state NOT IN ('allowed', 'approved')
BEGIN
    UPDATE grants SET settled = TRUE WHERE action_id = NEW.id AND NOT settled;
END;

CREATE INDEX grants_awaiting_outcome ON grants (consumed_at)
    WHERE consumed_at IS NOT NULL AND NOT settled;
DROP INDEX actions_runnable;
