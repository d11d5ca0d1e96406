"""Workers on separate hosts: each worker process runs in a network namespace of its own
(made here with ``ip netns`` and a veth pair) and reaches PostgreSQL only over that
link — inside a namespace, 127.0.0.1 is the namespace's own loopback. They also carry
distinct host names, so takeover goes by the lease, as between machines.

Then the network of one host is cut while it holds runs: the other host takes them over
when the lease expires, and when the link comes back, the cut-off worker's late writes
are fenced out (the recorded results show the survivor completed those steps).

Skipped only where network namespaces cannot be made (not root, no ``ip``, or a
sandbox that forbids them); the reason is given.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.test_postgres_workers import (
    WorkerProc,
    attempts,
    no_outcome_twice,
    query,
    results,
    spawn,
    start_runs,
    wait_for,
)
from tests.conftest import run, skip_not_postgres
from tests.pg import Cluster, unavailable_reason

pytestmark = pytest.mark.postgres


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


class Hosts:
    """Two network namespaces, each linked to this (the database's) host by a veth pair."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
        net = random.randrange(16, 250)
        self.tag = tag
        self.hosts = {}
        for i, name in enumerate(("a", "b")):
            base = i * 4
            self.hosts[name] = {
                "ns": f"duro-{name}-{tag}", "outer": f"dh{name}{tag}", "inner": f"dn{name}{tag}",
                "db_ip": f"10.213.{net}.{base + 1}", "ip": f"10.213.{net}.{base + 2}"}

    def make(self) -> None:
        for h in self.hosts.values():
            _ip("netns", "add", h["ns"])
            _ip("link", "add", h["outer"], "type", "veth", "peer", "name", h["inner"])
            _ip("link", "set", h["inner"], "netns", h["ns"])
            _ip("addr", "add", f"{h['db_ip']}/30", "dev", h["outer"])
            _ip("link", "set", h["outer"], "up")
            inside = ("netns", "exec", h["ns"], "ip")
            _ip(*inside, "addr", "add", f"{h['ip']}/30", "dev", h["inner"])
            _ip(*inside, "link", "set", h["inner"], "up")
            _ip(*inside, "link", "set", "lo", "up")

    def cut(self, name: str, up: bool) -> None:
        _ip("link", "set", self.hosts[name]["outer"], "up" if up else "down")

    def remove(self) -> None:
        for h in self.hosts.values():
            _ip("link", "del", h["outer"], check=False)
            _ip("netns", "del", h["ns"], check=False)


def _cannot_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"duro-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[tuple[Hosts, Cluster] | str]:
    reason = _cannot_make_namespaces()
    if reason:
        yield reason
        return
    pg = unavailable_reason(local=True)
    if pg:
        pytest.skip(f"PostgreSQL unavailable: {pg}")
    hosts = Hosts()
    try:
        hosts.make()
        listen = ("127.0.0.1", *(h["db_ip"] for h in hosts.hosts.values()))
        cluster = Cluster(local=True, listen=listen).start()
        try:
            yield hosts, cluster
        finally:
            cluster.stop()
    finally:
        hosts.remove()


@pytest.fixture
def procs() -> Iterator[list[WorkerProc]]:
    started: list[WorkerProc] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait(timeout=30)


def test_workers_on_two_hosts_and_a_network_cut(
        two_hosts: tuple[Hosts, Cluster] | str, tmp_path: Path, procs: list[WorkerProc],
        request: pytest.FixtureRequest) -> None:
    if isinstance(two_hosts, str):
        skip_not_postgres(request, f"cannot make network namespaces: {two_hosts}")
    assert not isinstance(two_hosts, str)
    hosts, cluster = two_hosts
    schema = cluster.fresh_url().split("schema=")[1]
    local_url = f"{cluster.url}?schema={schema}"
    lease = 3.0

    def url_from(name: str) -> str:
        h = hosts.hosts[name]
        return f"postgresql://postgres@{h['db_ip']}:{cluster.port}/postgres?schema={schema}"

    a = spawn(url_from("a"), "a", tmp_path, prefix=["ip", "netns", "exec", hosts.hosts["a"]["ns"]],
              lease=lease, max_active=30)
    b = spawn(url_from("b"), "b", tmp_path, prefix=["ip", "netns", "exec", hosts.hosts["b"]["ns"]],
              lease=lease, max_active=30)
    procs += [a, b]
    clients = run(query(local_url, "SELECT count(*), array_agg(DISTINCT host(client_addr)) "
                                   "FROM pg_stat_activity WHERE application_name = 'duro' "
                                   "AND client_addr IS NOT NULL"))
    assert {hosts.hosts["a"]["ip"], hosts.hosts["b"]["ip"]} <= set(clients[0][1]), clients

    # Phase 1: both hosts serve runs started from here.
    ids = run(start_runs(local_url, 60, 3, 0.05))
    got = run(results(local_url, ids, 60), timeout=90)
    assert Counter(n for names in got.values() for n in names).keys() == {"a", "b"}

    # Phase 2: cut host a off while it holds runs.
    ids2 = [f"x{i}" for i in range(40)]
    run(_start_named(local_url, ids2, 6, 0.3))
    wait_for(lambda: sum(1 for x in attempts([a.log]) if x[0] == "done" and
                         x[1].startswith("x")) >= 10, 30, "host a working")
    held = run(query(local_url, "SELECT workflow_id FROM runs WHERE owner = %s "
                                "AND status = 'running'", a.worker_id))
    assert held, "host a held no runs when cut off"
    cut_at = time.time()
    hosts.cut("a", up=False)
    try:
        got2 = run(results(local_url, ids2, 90), timeout=120)
        finished = time.time()
    finally:
        hosts.cut("a", up=True)
    assert all(len(names) == 6 for names in got2.values())
    assert finished - cut_at < 60
    # a's step attempts that ended after the cut could not be recorded before b took the
    # runs over; once the link is back they are fenced out: b's results stand.
    late = [(k, i) for kind, k, i, name, t in attempts([a.log])
            if kind == "done" and name == "a" and t > cut_at + 0.05 and k.startswith("x")]
    assert late, "no attempt of host a was cut off (test did not exercise fencing)"
    for k, i in late:
        assert got2[k][i] == "b", (k, i, got2[k])
    time.sleep(lease)  # let a's queued writes arrive and be refused
    run(no_outcome_twice(local_url))
    for w in (a, b):
        w.proc.send_signal(signal.SIGTERM)
    for w in (a, b):
        w.proc.wait(timeout=60)
    print(f"\nnetwork cut: host a held {len(held)} runs; host b finished all 40 "
          f"{finished - cut_at:.1f}s after the cut (lease {lease:g}s); {len(late)} late "
          f"attempts of host a fenced out")


async def _start_named(url: str, ids: list[str], steps: int, delay: float) -> None:
    import asyncio

    import duro
    from tests.acceptance.apps.pg_chain import mh_chain

    async with duro.Engine(url, worker=False) as client:
        await asyncio.gather(*(client.start(mh_chain, k, steps, delay, id=k) for k in ids))
