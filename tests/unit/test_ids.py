"""New run ids (duro/_ids.py): UUIDs of version 7, in the order they were made (to the
millisecond), unique, and not shared with a forked child."""

from __future__ import annotations

import os
import time
import uuid

from duro._ids import new_id


def test_ids_are_uuid7_text_made_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        value = uuid.UUID(text)
        assert str(value) == text and value.version == 7
        assert value.variant == uuid.RFC_4122
        assert before <= value.int >> 80 <= after  # its time: Unix milliseconds
    # Sorted as text, they keep the order of their milliseconds (the index's right edge).
    assert [u[:13] for u in sorted(ids)] == [u[:13] for u in ids]


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    new_id()  # the parent has random bits in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without pytest's cleanup
        os.write(write, "".join(new_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    theirs = {child[i:i + 36][14:] for i in range(0, len(child), 36)}  # the random part
    ours = {new_id()[14:] for _ in range(8)}
    assert len(theirs) == 8 and not theirs & ours
