-- Human approvals (store/_approvals.py): the read model of duro.approval(), kept with the
-- history (fenced as published state is: only if the append's fence passed), and decided
-- here atomically (the run's row locked first, as every write of its approvals does).

-- name: insert_approval
-- The approval_requested event's projection: a pending row, with the run's names (fenced;
-- without an epoch: a copied history's, written with its new run).
INSERT INTO approvals (approval_id, run_id, op, workflow_id, workflow_name, namespace, name,
                       context, requested_at, deadline_at, status)
SELECT %(approval_id)s, run_id, %(op)s, workflow_id, workflow_name, namespace, %(name)s, %(context)s,
       %(ts)s::float8, %(deadline_at)s::float8, 'pending'
FROM runs WHERE run_id = %(run_id)s
  AND (%(epoch)s::bigint IS NULL
       OR (epoch = %(epoch)s::bigint AND history_len = %(new_len)s::bigint))
ON CONFLICT DO NOTHING;

-- name: time_out_approval
-- The approval_timed_out event's projection. The row follows what the workflow saw: a
-- decision taken in the moment between the timer firing and this event (it lost the race)
-- keeps its decider and comment, but the status says timed out.
UPDATE approvals SET status = 'timed_out', decided_at = COALESCE(decided_at, %(ts)s)
WHERE approval_id = %(approval_id)s AND status IN ('pending', 'approved', 'rejected')
  AND EXISTS (SELECT 1 FROM runs WHERE run_id = %(run_id)s AND epoch = %(epoch)s
              AND history_len = %(new_len)s);

-- name: close_approvals
-- A run ended: none of its approvals stays pending.
UPDATE approvals SET status = 'run_ended', decided_at = %(now)s
WHERE run_id = %(run_id)s AND status = 'pending';

-- name: approval_by_id
SELECT * FROM approvals WHERE approval_id = %(approval_id)s;

-- name: lock_approval_run
-- Lock the approval's run first: every write of a run's approvals (its appends, its end,
-- a decision) holds the run's row, so decisions and the run's end are serialized. The
-- approval is read after it, in a statement that sees what committed meanwhile.
SELECT run_id FROM runs
WHERE run_id = (SELECT run_id FROM approvals WHERE approval_id = %(approval_id)s)
FOR UPDATE;

-- name: approval_for_decision
-- The approval and its run's status, read in the deciding transaction.
SELECT a.*, r.status AS run_status FROM approvals a JOIN runs r ON r.run_id = a.run_id
WHERE a.approval_id = %(approval_id)s;

-- name: decide_approval
-- The decision, only over a pending row: a second decision finds none.
UPDATE approvals SET status = %(status)s, decided_by = %(by)s, comment = %(comment)s,
    decided_at = %(now)s
WHERE approval_id = %(approval_id)s AND status = 'pending'
RETURNING *;

-- name: list_pending_approvals
-- The inbox: one range of approvals_pending, oldest first, after the keyset cursor.
SELECT * FROM approvals
WHERE status = 'pending' AND (requested_at, approval_id COLLATE "C") > (%(after_at)s::float8, %(after_id)s::text)
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(workflow)s::text IS NULL OR workflow_name = %(workflow)s::text)
  AND (%(workflow_id)s::text IS NULL OR workflow_id = %(workflow_id)s::text)
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
ORDER BY requested_at, approval_id COLLATE "C" LIMIT %(limit)s;

-- name: list_approvals
-- Every approval (or those of one status), oldest first: one range of approvals_requested.
SELECT * FROM approvals
WHERE (requested_at, approval_id COLLATE "C") > (%(after_at)s::float8, %(after_id)s::text)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(namespace)s::text IS NULL OR namespace = %(namespace)s::text)
  AND (%(workflow)s::text IS NULL OR workflow_name = %(workflow)s::text)
  AND (%(workflow_id)s::text IS NULL OR workflow_id = %(workflow_id)s::text)
  AND (%(name)s::text IS NULL OR name = %(name)s::text)
ORDER BY requested_at, approval_id COLLATE "C" LIMIT %(limit)s;
