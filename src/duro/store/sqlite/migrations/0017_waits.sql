-- What a suspended run waits for, as its worker knew it when it suspended (issue 19:
-- the web UI's "signal `approve` since 12:03"): the signal names its code awaits and
-- since when, its pending timers (set and due times), its open conditions. JSON
-- (duro/_waits.py), rewritten at each suspension; meaningful only while the run is
-- suspended. NULL: a run suspended before this column existed, or never suspended.
ALTER TABLE runs ADD COLUMN waits TEXT;
