-- The queues each worker serves (issue 19: the web UI's workers page), as it said when it
-- registered: a JSON array of queue names; NULL: every queue (a worker started without
-- --queue), or a worker registered before this column existed.
ALTER TABLE workers ADD COLUMN queues TEXT;
