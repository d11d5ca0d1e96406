-- Faults (issue 13). recoveries: how many times in a row the run was taken over from a
-- worker that died holding it, with no history written in between (a step that kills
-- its process would otherwise crash every worker in turn, forever); a worker parks the
-- run past its limit, and every append sets it back to 0. on_trial: a run that already
-- died twice that way is taken up alone, marked on trial; from then on only a death
-- during its own trial counts (runs that merely shared the process are not blamed).
-- depth: how deeply a child run is nested (0 for a run started from outside), so that
-- runaway recursion is refused.
ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN on_trial INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
