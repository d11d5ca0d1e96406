"""Default workflow ids of child workflows."""

from __future__ import annotations

import hashlib

__all__ = ["MAX_DERIVED_ID_BYTES", "default_child_id"]

MAX_DERIVED_ID_BYTES = 200
"""Longest default child id kept in its plain form (in UTF-8 bytes)."""

# Characters of the parent's id kept before the digest, so that a long id still shows
# which family it belongs to.
_KEPT = 48


def default_child_id(parent_workflow_id: str, parent_run_id: str, op: int) -> str:
    """The workflow id of a child started without one: deterministic, so a replay
    derives the same, and unique per parent run and operation.

    Plainly ``{parent id}/{run id[:8]}/{op}``: each level of nesting adds ~12 characters,
    so a deep chain of children would grow ids without end (on PostgreSQL, past ~2.7 KB
    an id can no longer be indexed). Past :data:`MAX_DERIVED_ID_BYTES` the parent's id is
    replaced by its first characters and a digest of all of it, which keeps ids bounded
    (~100 characters) and distinct; shorter ids, those of every existing history
    included, are unchanged.
    """
    derived = f"{parent_workflow_id}/{parent_run_id[:8]}/{op}"
    if len(derived.encode()) <= MAX_DERIVED_ID_BYTES:
        return derived
    digest = hashlib.sha256(parent_workflow_id.encode()).hexdigest()[:32]
    return f"{parent_workflow_id[:_KEPT]}~{digest}/{parent_run_id[:8]}/{op}"
