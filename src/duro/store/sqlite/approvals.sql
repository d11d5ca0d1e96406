-- Human approvals (store/_approvals.py): the read model of duro.approval(), kept with the
-- history (the writer holds the file's lock, so no fence is needed here: the append's
-- fence was checked first), and decided here atomically.

-- name: insert_approval
-- The approval_requested event's projection: a pending row, with the run's names (or a
-- copied history's, written with its new run: reset, retry, fork).
INSERT INTO approvals (approval_id, run_id, op, workflow_id, workflow_name, namespace, name,
                       context, requested_at, deadline_at, status)
SELECT :approval_id, run_id, :op, workflow_id, workflow_name, namespace, :name, :context,
       :ts, :deadline_at, 'pending'
FROM runs WHERE run_id = :run_id
ON CONFLICT DO NOTHING;

-- name: time_out_approval
-- The approval_timed_out event's projection. The row follows what the workflow saw: a
-- decision taken in the moment between the timer firing and this event (it lost the race)
-- keeps its decider and comment, but the status says timed out.
UPDATE approvals SET status = 'timed_out', decided_at = COALESCE(decided_at, :ts)
WHERE approval_id = :approval_id AND status IN ('pending', 'approved', 'rejected');

-- name: close_approvals
-- A run ended: none of its approvals stays pending.
UPDATE approvals SET status = 'run_ended', decided_at = :now
WHERE run_id = :run_id AND status = 'pending';

-- name: approval_by_id
SELECT * FROM approvals WHERE approval_id = :approval_id;

-- name: lock_approval_run
-- PostgreSQL locks the run here; the SQLite writer already holds the file's lock.
SELECT run_id FROM approvals WHERE approval_id = :approval_id;

-- name: approval_for_decision
-- The approval and its run's status, read in the deciding transaction.
SELECT a.*, r.status AS run_status FROM approvals a JOIN runs r ON r.run_id = a.run_id
WHERE a.approval_id = :approval_id;

-- name: decide_approval
-- The decision, only over a pending row: a second decision finds none.
UPDATE approvals SET status = :status, decided_by = :by, comment = :comment,
    decided_at = :now
WHERE approval_id = :approval_id AND status = 'pending'
RETURNING *;

-- name: list_pending_approvals
-- The inbox: one range of approvals_pending, oldest first, after the keyset cursor.
SELECT * FROM approvals
WHERE status = 'pending' AND (requested_at, approval_id) > (:after_at, :after_id)
  AND (:namespace IS NULL OR namespace = :namespace)
  AND (:workflow IS NULL OR workflow_name = :workflow)
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND (:name IS NULL OR name = :name)
ORDER BY requested_at, approval_id LIMIT :limit;

-- name: list_approvals
-- Every approval (or those of one status), oldest first: one range of approvals_requested.
SELECT * FROM approvals
WHERE (requested_at, approval_id) > (:after_at, :after_id)
  AND (:status IS NULL OR status = :status)
  AND (:namespace IS NULL OR namespace = :namespace)
  AND (:workflow IS NULL OR workflow_name = :workflow)
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
  AND (:name IS NULL OR name = :name)
ORDER BY requested_at, approval_id LIMIT :limit;
