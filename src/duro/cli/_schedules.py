"""``duro schedule``: create, update, list, pause, resume, trigger, backfill and delete
schedules.

These commands only change the database; the ticks are fired by the workers (``duro
worker`` or an application's embedded engine), which also run the schedules' workflows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

from duro import _checks as checks
from duro._clock import iso
from duro.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Style,
    codec,
    namespace,
)
from duro.cli._format import dumps, short_json, table, zone_time
from duro.cli._inspect import client
from duro.cli._load import import_target, load_workflow, parse_call_args
from duro.client import Client, Engine
from duro.client._schedules import ScheduleInfo
from duro.client._url import is_remote
from duro.errors import DuroError, InvalidArgumentError, SerializationError
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.schedules._spec import MAX_TICKS, OVERLAP_POLICIES
from duro.workflow import Workflow

__all__ = ["add_commands", "parse_duration"]

Command = Callable[[str, str], argparse.ArgumentParser]

_UTC_HELP = "print times in UTC (default: in the schedule's own time zone, labelled)"


def parse_duration(text: str) -> float:
    """``90``, ``1.5``, ``30s``, ``5m``, ``1h30m``, ``2d`` → seconds (an argparse type)."""
    try:
        return checks.parse_duration(text)
    except InvalidArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(command: Command) -> None:
    """Add ``schedule`` (with its actions) to the ``duro`` parser."""
    from duro.cli._main import _common  # the --db/-v options, accepted after the action

    parents = [_common(suppress=True)]
    parser = command("schedule", "manage schedules: start a workflow on a cron expression or "
                                 "a fixed interval (workers fire the ticks)")
    sub = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=parents)

    create = action("create", "create a schedule")
    create.add_argument("id", metavar="ID", help="the schedule's id (runs get workflow ids "
                                                  "ID@<tick time>)")
    create.add_argument("target", metavar="WORKFLOW",
                        help="MODULE:WORKFLOW (checks the arguments against the code) or a "
                             "registered workflow name")
    create.add_argument("args", nargs="*", metavar="ARG",
                        help="workflow arguments: JSON if it parses, else a string")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR",
                      help="a 5-field cron expression, e.g. '0 9 * * 1-5', or @hourly/@daily")
    when.add_argument("--every", type=parse_duration, metavar="DURATION",
                      help="a fixed interval: seconds, or e.g. 30s, 5m, 1h")
    create.add_argument("--tz", "--timezone", dest="timezone", default="UTC", metavar="ZONE",
                        help="IANA time zone of --cron (default UTC), e.g. Europe/Berlin")
    create.add_argument("--anchor", metavar="TIME",
                        help="--every: a tick time (ISO 8601; default the Unix epoch)")
    create.add_argument("--overlap", choices=OVERLAP_POLICIES, default="skip",
                        help="while the previous run is live: skip the tick (default), "
                             "buffer one, or allow all")
    create.add_argument("--catch-up", type=parse_duration, default=60.0, metavar="DURATION",
                        help="after downtime, still fire ticks missed by at most this long "
                             "(default 1m)")
    create.add_argument("--queue", help="the runs' queue (default: the workflow's)")
    create.add_argument("--json-args", metavar="JSON",
                        help="more arguments: a JSON array (positional) or object (keyword)")
    create.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                        help="import this module first (to check arguments of WORKFLOW "
                             "given by name)")
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--note", help="a note (e.g. why it is paused)")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.add_argument("--utc", action="store_true", help=_UTC_HELP)
    create.set_defaults(handler=create_command)

    update = action("update", "change a schedule in place (what is given; the rest, its "
                              "runs, counters and paused state stay)")
    update.add_argument("id", metavar="ID")
    update.add_argument("args", nargs="*", metavar="ARG",
                        help="new workflow arguments (replace the stored ones): JSON if it "
                             "parses, else a string")
    change = update.add_mutually_exclusive_group()
    change.add_argument("--cron", metavar="EXPR", help="a new cron expression (an interval "
                                                       "schedule becomes a cron one)")
    change.add_argument("--every", type=parse_duration, metavar="DURATION",
                        help="a new interval (a cron schedule becomes an interval one)")
    update.add_argument("--tz", "--timezone", dest="timezone", metavar="ZONE",
                        help="a new time zone of the cron expression")
    update.add_argument("--anchor", metavar="TIME", help="a new anchor of the interval")
    update.add_argument("--overlap", choices=OVERLAP_POLICIES, help="a new overlap policy")
    update.add_argument("--catch-up", type=parse_duration, metavar="DURATION",
                        help="a new catch-up window")
    update.add_argument("--queue", help="a new queue for the runs")
    update.add_argument("--json-args", metavar="JSON",
                        help="more arguments: a JSON array (positional) or object (keyword)")
    update.add_argument("-m", "--module", action="append", default=[], metavar="MODULE",
                        help="import this module first (to check the new arguments against "
                             "the workflow's code)")
    update.add_argument("--json", action="store_true", help="print JSON")
    update.add_argument("--utc", action="store_true", help=_UTC_HELP)
    update.set_defaults(handler=update_command)

    ls = action("ls", "list schedules")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--utc", action="store_true", help=_UTC_HELP)
    ls.set_defaults(handler=ls_command)

    show = action("show", "describe a schedule")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--utc", action="store_true", help=_UTC_HELP)
    show.add_argument("--ticks", type=_tick_count, default=0, metavar="N",
                      help=f"also list the next N ticks (1 to {MAX_TICKS})")
    show.set_defaults(handler=show_command)

    pause = action("pause", "stop firing a schedule's ticks (until resume)")
    pause.add_argument("id", metavar="ID")
    pause.add_argument("--note", help="why (shown by ls/show)")
    pause.set_defaults(handler=pause_command)

    resume = action("resume", "fire a paused schedule's ticks again, from the next one")
    resume.add_argument("id", metavar="ID")
    resume.add_argument("--utc", action="store_true", help=_UTC_HELP)
    resume.set_defaults(handler=resume_command)

    trigger = action("trigger", "start a run of a schedule now (even while paused)")
    trigger.add_argument("id", metavar="ID")
    trigger.add_argument("--json", action="store_true", help="print JSON")
    trigger.set_defaults(handler=trigger_command)

    backfill = action("backfill", "start the runs of the ticks in a past time range (each "
                                  "tick once: running it again starts nothing new)")
    backfill.add_argument("id", metavar="ID")
    backfill.add_argument("start", metavar="START",
                          help="ISO 8601 time; without an offset, in the schedule's zone")
    backfill.add_argument("end", metavar="END", help="ISO 8601 time (inclusive)")
    backfill.add_argument("--json", action="store_true", help="print JSON")
    backfill.set_defaults(handler=backfill_command)

    delete = action("delete", "delete a schedule (its runs stay)")
    delete.add_argument("id", metavar="ID")
    delete.set_defaults(handler=delete_command)


@contextlib.asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    try:
        yield
    except ScheduleNotFoundError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except ScheduleAlreadyExistsError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except (ValueError, TypeError, SerializationError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _when(s: ScheduleInfo) -> str:
    return s.describe()


def _at(s: ScheduleInfo, when: dt.datetime | None, args: argparse.Namespace) -> str:
    """A time of the schedule in its own zone (labelled), or in UTC with ``--utc``."""
    return zone_time(when, s.timezone, utc=getattr(args, "utc", False))


def _state(s: ScheduleInfo) -> str:
    return "paused" if s.paused else "active"


async def create_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Create a schedule."""
    for module in args.module:
        import_target(module)
    workflow: Workflow[..., Any] | str = (load_workflow(args.target) if ":" in args.target
                                          else args.target)
    call_args, kwargs = parse_call_args(args.args, args.json_args)
    anchor = None
    if args.anchor is not None:
        anchor = _parse_time(args.anchor, "UTC", "--anchor")
    async def create(made: Client) -> ScheduleInfo:
        async with _errors():
            return await made.schedules.create(
                args.id, workflow, args=call_args, kwargs=kwargs, cron=args.cron,
                every=args.every, timezone=args.timezone, anchor=anchor,
                overlap=args.overlap, catch_up=args.catch_up, queue=args.queue,
                paused=args.paused, note=args.note)

    if is_remote(url):  # through a server: in its token's namespace
        async with client(url) as remote:
            info = await create(remote)
    else:  # an engine's client refuses a name no workflow imported here has
        async with Engine(url, worker=False, codec=codec()) as engine:
            info = await create(engine.with_namespace(namespace()))
    if args.json:
        out.line(dumps(info.to_json(), ascii=not out.unicode))
        return EXIT_OK
    nxt = "paused" if info.paused else f"next tick {_at(info, info.next_fire_at, args)}"
    out.line(f"created schedule {info.schedule_id!r}: {info.workflow_name} {_when(info)} "
             f"({nxt})")
    return EXIT_OK


async def update_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Change a schedule in place."""
    for module in args.module:
        import_target(module)
    call_args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    if args.args or args.json_args is not None:
        positional, kwargs = parse_call_args(args.args, args.json_args)
        call_args = list(positional)
    async with client(url) as engine, _errors():
        anchor = None
        if args.anchor is not None:
            zone = args.timezone or (await engine.schedules.get(args.id)).timezone
            anchor = _parse_time(args.anchor, zone, "--anchor")
        info = await engine.schedules.update(
            args.id, args=call_args, kwargs=kwargs, cron=args.cron, every=args.every,
            timezone=args.timezone, anchor=anchor, overlap=args.overlap,
            catch_up=args.catch_up, queue=args.queue)
    if args.json:
        out.line(dumps(info.to_json(), ascii=not out.unicode))
        return EXIT_OK
    nxt = "paused" if info.paused else f"next tick {_at(info, info.next_fire_at, args)}"
    out.line(f"updated schedule {info.schedule_id!r}: {info.workflow_name} {_when(info)} "
             f"({nxt})")
    return EXIT_OK


async def ls_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """List schedules."""
    async with client(url) as engine:
        schedules = await engine.schedules.list()
    if args.json:
        out.line(dumps([s.to_json() for s in schedules], ascii=not out.unicode))
        return EXIT_OK
    if not schedules:
        out.line("no schedules")
        return EXIT_OK
    rows = [[s.schedule_id, s.workflow_name, _when(s), _state(s),
             "-" if s.paused else _at(s, s.next_fire_at, args), s.last_workflow_id or "-",
             f"{s.fired}/{s.missed}/{s.overlap_skipped}"] for s in schedules]
    for line in table(["ID", "WORKFLOW", "WHEN", "STATE", "NEXT", "LAST RUN",
                       "FIRED/MISSED/SKIPPED"], rows, out):
        out.line(line)
    return EXIT_OK


def _tick_count(text: str) -> int:
    """``--ticks N``: 1 to :data:`MAX_TICKS` (as the HTTP route allows)."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_TICKS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_TICKS}, "
                                         f"not {text!r}")
    return count


async def show_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Describe a schedule."""
    async with client(url) as engine, _errors():
        s = await engine.schedules.get(args.id)
    ticks = s.upcoming_ticks(args.ticks) if args.ticks else []
    if args.json:
        raw = s.to_json()
        if args.ticks:
            raw["ticks"] = [iso(t) for t in ticks]  # as GET /v1/schedules/{id}/ticks
        out.line(dumps(raw, ascii=not out.unicode))
        return EXIT_OK
    call = [short_json(a) for a in s.args] + [f"{k}={short_json(v)}"
                                                 for k, v in s.kwargs.items()]
    fields = [
        ("schedule", s.schedule_id),
        ("workflow", f"{s.workflow_name}({', '.join(call)})"),
        ("when", _when(s)),
        ("state", _state(s) + (f" ({s.note})" if s.note else "")),
        ("next tick", "-" if s.paused else _at(s, s.next_fire_at, args)),
        ("overlap", s.overlap),
        ("catch-up", f"{s.catch_up.total_seconds():g}s"),
        ("queue", s.queue),
        ("source", s.source),
        ("last run", s.last_workflow_id or "-"),
        ("buffered tick", _at(s, s.buffered_at, args)),
        ("last tick", _at(s, s.last_fire_at, args)),
        ("fired", str(s.fired)),
        ("missed", f"{s.missed} (older than the catch-up window)"),
        ("skipped", f"{s.overlap_skipped} (previous run still live)"),
    ]
    if args.ticks:
        fields.append(("upcoming", ", ".join(_at(s, t, args) for t in ticks) or "-"))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        out.line(f"{key.ljust(width)}  {value}")
    return EXIT_OK


async def pause_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Pause a schedule."""
    async with client(url) as engine, _errors():
        await engine.schedules.pause(args.id, note=args.note)
    out.line(f"paused schedule {args.id!r}")
    return EXIT_OK


async def resume_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Resume a schedule."""
    async with client(url) as engine, _errors():
        info = await engine.schedules.resume(args.id)
    out.line(f"resumed schedule {args.id!r} (next tick {_at(info, info.next_fire_at, args)})")
    return EXIT_OK


async def trigger_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Start a run of a schedule now."""
    async with client(url) as engine, _errors():
        handle = await engine.schedules.trigger(args.id)
    if args.json:
        out.line(dumps({"workflow_id": handle.workflow_id, "run_id": handle.run_id},
                       ascii=not out.unicode))
    else:
        out.line(f"started {handle.workflow_id} (run {handle.run_id}); a worker serving the "
                 f"workflow executes it: follow it with `duro show {handle.workflow_id}`")
    return EXIT_OK


async def backfill_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Start the runs of past ticks."""
    async with client(url) as engine, _errors():
        info = await engine.schedules.get(args.id)
        start = _parse_time(args.start, info.timezone, "START")
        end = _parse_time(args.end, info.timezone, "END")
        handles = await engine.schedules.backfill(args.id, start, end)
    if args.json:
        out.line(dumps([h.workflow_id for h in handles], ascii=not out.unicode))
        return EXIT_OK
    for handle in handles:
        out.line(f"started {handle.workflow_id}")
    out.line(f"backfilled {len(handles)} run(s) of schedule {args.id!r}"
             + ("" if handles else " (every tick in the range has its run already)"))
    return EXIT_OK


async def delete_command(args: argparse.Namespace, url: str, out: Style) -> int:
    """Delete a schedule."""
    async with client(url) as engine, _errors():
        await engine.schedules.delete(args.id)
    out.line(f"deleted schedule {args.id!r}")
    return EXIT_OK


def _parse_time(text: str, zone: str, what: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{what} is not an ISO 8601 time: {text!r} (e.g. 2024-05-01T08:00 or "
                       "2024-05-01T06:00:00Z)", EXIT_USAGE) from None
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=ZoneInfo(zone))
        except (DuroError, ValueError, KeyError) as exc:
            raise CliError(f"cannot place {what} in time zone {zone!r}: {exc}",
                           EXIT_USAGE) from None
    return when
