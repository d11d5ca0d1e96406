"""Catches workflow code that blocks or does I/O, so a bad workflow fails loudly
instead of hanging a worker.

Two mechanisms, both active only while a worker thread steps a workflow loop:
an audit hook (``sys.addaudithook``) that rejects file, socket and subprocess I/O plus
a patched ``time.sleep`` and thread start (``threading.Thread.start``, thread pools:
Python 3.11 raises no audit event for a new thread, so ``_thread``'s start functions are
wrapped; steps, run outside the guard, may start threads); and a watchdog thread that
interrupts workflow code running past the workflow task timeout (a busy loop) by raising
into that thread.
"""

from __future__ import annotations

import _thread
import ctypes
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, SupportsIndex

from duro.errors import WorkflowBlockingError

if TYPE_CHECKING:
    from duro.workflow._instance import RunInstance

__all__ = ["GuardInterrupt", "enter", "exit", "install"]


class GuardInterrupt(BaseException):
    """Raised into a thread whose workflow code ran past its task timeout."""


_state = threading.local()
_lock = threading.Lock()
_installed = False
_active: dict[int, tuple[RunInstance, float, int]] = {}  # thread id -> (inst, started, token)
_token = 0
_timeout = 2.0

_BLOCKED_EVENTS = {
    "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
    "os.fork", "os.spawn", "urllib.Request", "sqlite3.connect", "shutil.rmtree",
    "os.remove", "os.rename", "os.mkdir", "os.rmdir",
}
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth", ".pyi", ".zip")


def _fail(inst: RunInstance, what: str) -> WorkflowBlockingError:
    err = WorkflowBlockingError(
        f"workflow {inst.workflow.name!r} (id {inst.workflow_id}) {what}. Workflow code must "
        "be deterministic and must not block or do I/O: move this into a @duro.step "
        "(and use asyncio.sleep / duro.sleep for waiting)"
    )
    if inst.park_error is None:
        inst.park_error = err
    return err


def _audit(event: str, args: tuple[Any, ...]) -> None:
    entry = _active.get(threading.get_ident())
    if entry is None or getattr(_state, "inside", False):
        return
    if event == "open":
        path = args[0]
        if isinstance(path, (str, bytes)):
            text = path.decode(errors="replace") if isinstance(path, bytes) else path
            if text.endswith(_CODE_SUFFIXES) or text.endswith("/"):
                return  # imports
        elif isinstance(path, int):
            return
        _state.inside = True
        try:
            raise _fail(entry[0], f"opened a file ({args[0]!r})")
        finally:
            _state.inside = False
    if event in _BLOCKED_EVENTS or event.startswith("os.exec"):
        _state.inside = True
        try:
            raise _fail(entry[0], f"did I/O ({event})")
        finally:
            _state.inside = False


_real_sleep = time.sleep


def _guarded_sleep(seconds: float | SupportsIndex) -> None:
    entry = _active.get(threading.get_ident())
    if entry is not None:
        raise _fail(entry[0], f"called time.sleep({seconds!r})")
    _real_sleep(seconds)


# The functions that start an OS thread: threading binds its own names at import, so both
# its and _thread's are wrapped (3.13 starts threads through start_joinable_thread).
_THREAD_STARTERS = (
    (_thread, "start_new_thread"), (_thread, "start_new"),
    (_thread, "start_joinable_thread"), (threading, "_start_new_thread"),
    (threading, "_start_joinable_thread"),
)


def _guard_thread_start(real: Callable[..., Any]) -> Callable[..., Any]:
    def start(*args: Any, **kwargs: Any) -> Any:
        entry = _active.get(threading.get_ident())
        if entry is not None:
            raise _fail(entry[0], "started a thread (threading.Thread, a thread pool)")
        return real(*args, **kwargs)

    start.__wrapped__ = real  # type: ignore[attr-defined]
    return start


def _patch_thread_start() -> None:
    for module, name in _THREAD_STARTERS:
        real = getattr(module, name, None)
        if real is not None and not hasattr(real, "__wrapped__"):
            setattr(module, name, _guard_thread_start(real))


def _watch() -> None:
    while True:
        _real_sleep(min(0.25, _timeout / 4))
        now = time.monotonic()
        with _lock:
            for thread_id, (inst, started, _tok) in list(_active.items()):
                if now - started > _timeout and inst.park_error is None:
                    _fail(inst, f"ran for more than {_timeout:g}s without awaiting "
                                "(a busy loop or a blocking call)")
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(thread_id), ctypes.py_object(GuardInterrupt)
                    )


def install(timeout: float) -> None:
    """Install the hook, the sleep patch and the watchdog (once per process)."""
    global _installed, _timeout
    _timeout = timeout
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    time.sleep = _guarded_sleep
    _patch_thread_start()
    threading.Thread(target=_watch, name="duro-workflow-watchdog", daemon=True).start()


def enter(inst: RunInstance) -> int:
    """Mark this thread as running workflow code; returns a token for :func:`exit`."""
    global _token
    with _lock:
        _token += 1
        _active[threading.get_ident()] = (inst, time.monotonic(), _token)
        return _token


def exit(token: int) -> None:
    """Unmark this thread."""
    with _lock:
        entry = _active.get(threading.get_ident())
        if entry is not None and entry[2] == token:
            del _active[threading.get_ident()]
