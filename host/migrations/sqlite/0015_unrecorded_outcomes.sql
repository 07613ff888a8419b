-- Spent grants with no recorded outcome: the sweeper looks for actions
-- still allowed or approved whose grant was consumed long ago (a run
-- claimed it, or an agent's report consumed it, and the host stopped
-- before the outcome's evidence was written). The first index keeps that
-- look at the few actions waiting to run; the second finds their grants.
CREATE INDEX actions_runnable ON actions (id) WHERE state IN ('allowed', 'approved');
CREATE INDEX grants_action_id ON grants (action_id);
