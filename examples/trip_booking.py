"""Trip booking with a saga: undo what was booked, durably, when a later step fails.

The workflow books a flight, a hotel and a car, then charges the card. Each booking
registers its compensation with ``duro.Saga``; when a later step fails (simulate it
with ``--fail-at car`` or ``--fail-at payment``), the saga cancels what was booked,
last first, and the run fails with the original error. No network: the travel
provider is simulated in this file, with a ledger file standing for its database.

Compensations are ordinary steps, so they are durable too. Kill the process while it
compensates, run the same command again, and it resumes: compensations that finished
are read back from the history, not run again::

    python examples/trip_booking.py --fail-at car                      # ~5 s
    python examples/trip_booking.py --fail-at payment --slow-compensation
    python examples/trip_booking.py --fail-at car --fast               # <1 s, for tests

The workflow id is derived from the trip, so the second command finds the first one's
run in ``duro-demo.db`` and resumes it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duro

T = TypeVar("T")

STAGES = ("flight", "hotel", "car", "payment")


@dataclass
class Simulation:
    """Knobs of the simulated provider (not part of the workflow's durable input)."""

    latency: float = 1.0
    """Seconds a booking call takes (0 with ``--fast``)."""
    undo_latency: float = 1.0
    """Seconds a cancellation takes (``--slow-compensation`` makes it longer)."""
    ledger: Path = Path("duro-demo.provider.jsonl")
    """The provider's own records: what it booked and cancelled, by idempotency key."""


SIM = Simulation()

# Labels of the steps this process executed. Display only: workflow code reads it to
# say "replayed" vs "done", and must never branch its real logic on it.
_RAN_HERE: set[str] = set()
_REPLAYED: list[str] = []


def say(label: str, message: str) -> None:
    """Print one progress line at once (stdout may be a pipe)."""
    print(f"  [{label:<11}] {message}", flush=True)


# -- the simulated travel provider --------------------------------------------------


class SoldOut(Exception):
    """The provider has nothing left to book."""


class CardDeclined(Exception):
    """The payment was refused."""


def _ledger() -> dict[str, dict[str, Any]]:
    if not SIM.ledger.exists():
        return {}
    entries = (json.loads(line) for line in SIM.ledger.read_text().splitlines() if line)
    return {e["key"]: e for e in entries}


async def provider(label: str, action: str, detail: str, *, prefix: str,
                   latency: float) -> str:
    """Call the provider: it applies the request at once and answers after ``latency``.

    It deduplicates by the step's idempotency key, as real booking and payment APIs do
    with an ``Idempotency-Key`` header: a repeated request (a step that ran again
    because the process died before its result was saved) returns the first answer
    and has no second effect.
    """
    info = duro.step_info()
    _RAN_HERE.add(label)
    say(label, f"executing step #{info.seq}: {action} {detail} "
               f"(Idempotency-Key {info.idempotency_key})")
    earlier = _ledger().get(info.idempotency_key)
    if earlier is not None:
        say(label, f"the provider already did this ({earlier['ref']}): same key, "
                   "no second effect")
        await asyncio.sleep(latency)
        return str(earlier["ref"])
    digest = hashlib.sha256(info.idempotency_key.encode()).hexdigest()[:6].upper()
    ref = f"{prefix}-{digest}"
    with SIM.ledger.open("a") as f:  # the provider's own durable record, written first
        f.write(json.dumps({"key": info.idempotency_key, "action": action,
                            "detail": detail, "ref": ref}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    await asyncio.sleep(latency)
    return ref


# -- steps: each booking, and each compensation, is recorded once ---------------------


@dataclass
class Trip:
    traveler: str
    destination: str
    nights: int
    fail_at: str | None = None
    """Which stage the simulated provider refuses (for the demo)."""


@dataclass
class Booking:
    kind: str
    ref: str
    price: int


UNDO_RETRY = duro.RetryPolicy(max_attempts=20, initial_interval=0.2, max_interval=5.0)


@duro.step(name="trip.book_flight")
async def book_flight(trip: Trip) -> Booking:
    ref = await provider("flight", "booking flight", f"to {trip.destination}", prefix="FL",
                         latency=SIM.latency)
    return Booking(kind="flight", ref=ref, price=420)


@duro.step(name="trip.book_hotel")
async def book_hotel(trip: Trip) -> Booking:
    ref = await provider("hotel", "booking hotel", f"in {trip.destination}, "
                         f"{trip.nights} nights", prefix="HO", latency=SIM.latency)
    return Booking(kind="hotel", ref=ref, price=95 * trip.nights)


@duro.step(name="trip.book_car")
async def book_car(trip: Trip) -> Booking:
    if trip.fail_at == "car":
        _RAN_HERE.add("car")
        say("car", f"executing step #{duro.step_info().seq}: booking car in "
                   f"{trip.destination}")
        await asyncio.sleep(SIM.latency)
        raise duro.NonRetryableError(f"sold out: no cars left in {trip.destination}")
    ref = await provider("car", "booking car", f"in {trip.destination}", prefix="CA",
                         latency=SIM.latency)
    return Booking(kind="car", ref=ref, price=40 * trip.nights)


@duro.step(name="trip.charge_payment")
async def charge_payment(trip: Trip, total: int) -> str:
    if trip.fail_at == "payment":
        _RAN_HERE.add("payment")
        say("payment", f"executing step #{duro.step_info().seq}: charging {total} EUR")
        await asyncio.sleep(SIM.latency)
        raise duro.NonRetryableError(f"card declined for {trip.traveler} ({total} EUR)")
    return await provider("payment", "charging card", f"{total} EUR", prefix="PAY",
                          latency=SIM.latency)


@duro.step(name="trip.cancel_booking", retry=UNDO_RETRY)
async def cancel_booking(booking: Booking) -> str:
    """The compensation of a booking (retried: an undo must get through eventually)."""
    await provider(f"undo {booking.kind}", f"cancelling {booking.kind}", booking.ref,
                   prefix="CX", latency=SIM.undo_latency)
    return f"{booking.kind} {booking.ref} cancelled"


# -- the workflow: deterministic orchestration, replayed after a crash ---------------


async def _track(label: str, call: Awaitable[T], summary: Callable[[T], str]) -> T:
    """Await a step and say whether this process ran it or read it from the history."""
    try:
        result = await call
    except duro.StepFailedError as exc:
        how = "failed" if label in _RAN_HERE else "failed (replayed from history)"
        then = "" if label.startswith("undo") else "; undoing the bookings so far, last first"
        say(label, f"{how}: {exc.cause.message}{then}")
        raise
    if label in _RAN_HERE:
        say(label, f"done, saved to history: {summary(result)}")
    else:
        _REPLAYED.append(label)
        say(label, f"replayed from history, not re-run: {summary(result)}")
    return result


def _undo(booking: Booking) -> Callable[[], Awaitable[str]]:
    """The compensation the saga runs for ``booking``: a step, so it is durable."""
    label = f"undo {booking.kind}"
    return lambda: _track(label, cancel_booking(booking), lambda text: text)


@duro.workflow(name="trip_booking")
async def book_trip(trip: Trip) -> dict[str, Any]:
    """Book flight, hotel and car, then pay; on failure cancel the bookings, last first."""
    bookings: list[Booking] = []
    async with duro.Saga() as saga:
        for kind, book in (("flight", book_flight), ("hotel", book_hotel),
                           ("car", book_car)):
            booking = await _track(kind, book(trip), lambda b: f"{b.kind} {b.ref}")
            saga.add(_undo(booking))
            bookings.append(booking)
        total = sum(b.price for b in bookings)
        receipt = await _track("payment", charge_payment(trip, total),
                               lambda ref: f"charged {total} EUR ({ref})")
    return {"traveler": trip.traveler, "destination": trip.destination,
            "bookings": {b.kind: b.ref for b in bookings}, "total": total,
            "receipt": receipt}


# -- the command line ------------------------------------------------------------------


def workflow_id_for(trip: Trip) -> str:
    """The workflow id, the run's idempotency key: the same trip means the same run."""
    text = f"{trip.traveler}-{trip.destination}-{trip.nights}n"
    if trip.fail_at:
        text += f"-fail-at-{trip.fail_at}"
    return "trip-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A durable trip-booking saga: kill it while it compensates, rerun, it "
                    "resumes without repeating finished compensations.")
    parser.add_argument("--traveler", default="Ada")
    parser.add_argument("--destination", default="Lisbon")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--fail-at", choices=STAGES[2:],
                        help="make the provider refuse this stage (simulated)")
    parser.add_argument("--db", default="duro-demo.db",
                        help="SQLite file holding the runs (default: ./duro-demo.db)")
    parser.add_argument("--fast", action="store_true", help="no simulated latency")
    parser.add_argument("--slow-compensation", nargs="?", type=float, const=4.0,
                        metavar="SECONDS",
                        help="make each cancellation take SECONDS (default 4): time to "
                             "kill the process while it compensates")
    parser.add_argument("--new", action="store_true",
                        help="start a fresh run even if this trip already has one")
    return parser.parse_args(argv)


async def _outcome_of(engine: duro.Engine, workflow_id: str) -> list[str]:
    """The compensations the run's history records, in order."""
    events = await engine.get_handle(workflow_id).history()
    return [str(e.data) for e in events
            if e.kind == "step_completed" and e.name == "trip.cancel_booking"]


async def _run(args: argparse.Namespace, rerun: str) -> int:
    trip = Trip(traveler=args.traveler, destination=args.destination, nights=args.nights,
                fail_at=args.fail_at)
    workflow_id = workflow_id_for(trip)
    db = os.path.abspath(args.db)
    print(f"duro trip booking saga  (pid {os.getpid()})\n"
          f"  workflow id: {workflow_id}\n"
          f"  database:    {db}\n"
          f"  provider:    {SIM.ledger}  (the simulated provider's records)\n\n"
          f"Kill this process at any moment (Ctrl-C, or `kill -9 {os.getpid()}` from another\n"
          f"terminal), then run the same command again:\n"
          f"    {rerun}\n"
          f"It resumes where it stopped: finished bookings and cancellations are not\n"
          f"repeated.\n", flush=True)

    async with duro.Engine(f"sqlite:///{db}") as engine:
        try:
            previous: duro.RunInfo | None = await engine.get_handle(workflow_id).describe()
        except duro.RunNotFoundError:
            previous = None
        if previous is None:
            print("Starting a new run.\n", flush=True)
        elif previous.status.is_terminal and not args.new:
            print(f"This trip's run {previous.run_id} already ended ({previous.status}); "
                  "the workflow id is an idempotency key: here is its stored outcome, "
                  "nothing was executed again.\n(Pass --new to book the trip again.)\n")
        elif not previous.status.is_terminal and not args.new:
            print(f"Resuming unfinished run {previous.run_id} ({previous.status}, "
                  f"{previous.history_length} events in its history).\n", flush=True)
        else:
            if not previous.status.is_terminal:
                await engine.terminate(workflow_id, reason="superseded by --new")
            print("Starting a new run (--new).\n", flush=True)
        handle = await engine.start(book_trip, trip, id=workflow_id,
                                    on_reuse="allow" if args.new else "use_existing")
        try:
            itinerary = await handle.result()
        except duro.WorkflowFailedError as exc:
            undone = await _outcome_of(engine, workflow_id)
            print(f"\nThe trip could not be booked: {exc.cause.message}\n"
                  f"The saga undid the bookings, last first ({len(undone)} recorded "
                  "compensations):")
            for line in undone:
                print(f"    {line}")
            _summary()
            _inspect_hint(workflow_id, args.db)
            return 1
        except (duro.WorkflowCancelledError, duro.WorkflowTerminatedError) as exc:
            print(f"\n{exc} (pass --new to book the trip again)")
            return 1
    print(f"\nTrip booked: {json.dumps(itinerary)}")
    _summary()
    _inspect_hint(workflow_id, args.db)
    return 0


def _summary() -> None:
    if _RAN_HERE or _REPLAYED:
        print(f"\nThis process executed {len(_RAN_HERE)} step(s); {len(_REPLAYED)} finished "
              "step(s) were replayed from the history.")


def _inspect_hint(workflow_id: str, db: str) -> None:
    quoted = shlex.quote(db)
    print(f"\nInspect this run with the duro CLI:\n"
          f"    duro show {workflow_id} --db {quoted}\n"
          f"    duro history {workflow_id} --db {quoted}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.fast:
        SIM.latency = SIM.undo_latency = 0.0
    if args.slow_compensation is not None:
        SIM.undo_latency = args.slow_compensation
    SIM.ledger = Path(args.db).resolve().with_suffix(".provider.jsonl")
    cli = list(sys.argv[1:] if argv is None else argv)
    # Rerunning must resume, so the suggested command drops --new.
    rerun = shlex.join(["python", sys.argv[0], *(a for a in cli if a != "--new")])
    try:
        return asyncio.run(_run(args, rerun))
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command to resume:\n    {rerun}", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
