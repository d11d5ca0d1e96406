"""The README's first command: ``examples/research_agent.py`` runs, and survives kill -9;
``examples/agent.py`` (the tool-using agent on ``duro.openai.chat``) too, streamed;
``examples/rpc_orders.py`` (two services, one durable call) runs offline."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.llm import local_model

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "research_agent.py"
AGENT = SCRIPT.with_name("agent.py")
EXECUTED = re.compile(r"executing step #(\d+)")
REPLAYED = re.compile(r"^\s*\[([^\]]+?)\s*\] replayed from history", re.MULTILINE)


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_fast_run_prints_report_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    first = run_demo("--fast", "--db", str(db), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "# Research report: durable execution for AI agents" in first.stdout
    assert "Sources (" in first.stdout
    assert "duro show research-durable-execution-for-ai-agents --db" in first.stdout
    assert len(EXECUTED.findall(first.stdout)) >= 8  # plan, 3 searches, 3 LLM calls, report
    assert query(db, "SELECT status FROM runs") == [("completed",)]

    # Same topic, same workflow id: the stored result comes back, nothing runs again.
    again = run_demo("--fast", "--db", str(db), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already completed" in again.stdout
    assert "# Research report: durable execution for AI agents" in again.stdout
    assert EXECUTED.findall(again.stdout) == []
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]


def test_kill_9_then_rerun_resumes_without_rerunning_finished_steps(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    # Real (simulated) latency so there is time to kill it mid-way; a short durable sleep.
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--db", str(db), "--cooldown", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    llm_started = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if re.search(r"\[llm \d+\s*\] executing", line):
                llm_started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # An LLM step starts only once its search step's result is recorded.
        assert llm_started.wait(timeout=30), "".join(lines)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
    first_out = "".join(lines)
    assert proc.returncode == -9

    completed_before = {op for (op,) in query(
        db, "SELECT op FROM events WHERE kind = 'step_completed'")}
    ((run_id, status),) = query(db, "SELECT run_id, status FROM runs")
    assert status != "completed"
    assert len(completed_before) >= 2, first_out  # the plan and at least one search

    rerun = run_demo("--fast", "--db", str(db), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    out = rerun.stdout
    assert f"Resuming unfinished run {run_id}" in out
    assert "# Research report: durable execution for AI agents" in out

    executed_again = {int(op) for op in EXECUTED.findall(out)}
    assert executed_again, out  # at least the final report step ran in the second process
    assert not executed_again & completed_before, out
    assert len(REPLAYED.findall(out)) == len(completed_before), out

    # The same run finished; each step's outcome is recorded once.
    assert query(db, "SELECT run_id, status FROM runs") == [(run_id, "completed")]
    assert query(db, """SELECT run_id, op FROM events WHERE kind = 'step_completed'
                        GROUP BY run_id, op HAVING count(*) > 1""") == []
    completed_after = {op for (op,) in query(
        db, "SELECT op FROM events WHERE kind = 'step_completed'")}
    assert completed_before < completed_after
    assert len(completed_after) == 8  # plan, 3 searches, 3 LLM calls, report


ANSWER = ("Answer: Based on 2 tool results: The best match for durable execution is "
          "https://example.org/durable-execution (1 of 3 pages). Durable execution records "
          "every step of a program in a persistent history.")


def run_agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(AGENT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_agent_runs_its_tool_loop_offline(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    proc = subprocess.Popen([sys.executable, str(AGENT), "--db", str(db), "--token-delay",
                             "0"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        # It waits for a human before publishing: approved from another process.
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"Approval needed: publish \(id (\S+)\)", line)
            if found:
                decided = subprocess.run(
                    [sys.executable, "-m", "duro", "--db", f"sqlite:///{db}", "approve",
                     found.group(1), "--by", "tester", "--comment", "ship it"],
                    capture_output=True, text=True, timeout=60)
                assert decided.returncode == 0, decided.stdout + decided.stderr
                break
        lines.extend(proc.stdout)
    finally:
        if proc.poll() is None:
            proc.wait(timeout=60)
        proc.stdout.close()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "[publish] the report on 'durable execution' is out" in out
    history = subprocess.run([sys.executable, "-m", "duro", "--db", f"sqlite:///{db}",
                              "history", "agent-durable-execution"], capture_output=True,
                             text=True, timeout=60).stdout
    assert "approved by tester: ship it" in history
    assert "[search] 'durable execution'" in out
    assert "[fetch_page] https://example.org/durable-execution" in out
    assert ANSWER in out
    # The streamed answer was printed before the stored one.
    assert out.index("Based on 2 tool results") < out.index("Answer:")
    assert "Usage: 3 model calls" in out
    assert query(db, "SELECT status FROM runs") == [("completed",)]


def test_agent_stops_at_its_budget_and_wraps_up(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    done = run_agent("--db", str(db), "--token-delay", "0", "--budget", "0.00001", "--yes",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The first model call spent more than the budget: the second is never made.
    assert "Answer: (budget spent: $0.000016 of $1e-05) what the tools found: The best " \
        "match for durable execution" in done.stdout
    assert "Usage: 1 model calls" in done.stdout
    refused = query(db, "SELECT meta FROM events WHERE kind = 'step_failed'")
    assert len(refused) == 1 and b'"exceeded"' in refused[0][0]  # type: ignore[operator]


def _streamed(db: Path) -> bool:
    try:
        return db.exists() and query(db, "SELECT count(*) FROM run_streams") != [(0,)]
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return False


def test_agent_killed_mid_stream_resumes_without_asking_again(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    with local_model() as llm:
        llm.configure(token_delay=0.2)  # ~5 s for the final answer: time to kill it
        proc = subprocess.Popen([sys.executable, str(AGENT), "--db", str(db),
                                 "--model-url", llm.url], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            # The third model call (the final answer) is being streamed, and some of its
            # chunks are stored (the two turns before it streamed nothing: tool calls).
            while (llm.stats()["requests"] < 3 or not _streamed(db)) \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            assert llm.stats()["requests"] == 3 and _streamed(db)
        finally:
            proc.kill()
            first_out = proc.communicate(timeout=10)[0]
        assert proc.returncode == -9, first_out
        # Killed mid-stream: the first two turns and both tools done, the third not.
        assert query(db, "SELECT count(*) FROM events WHERE kind = 'step_completed'") == [
            (4,)]

        llm.configure(token_delay=0.0)
        rerun = run_agent("--db", str(db), "--model-url", llm.url, "--yes", cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        out = rerun.stdout
        assert ANSWER in out
        # Only the cut call ran again: the finished ones came from the history.
        assert "[think #5, attempt 1]" in out and "[think #1" not in out
        assert "[search]" not in out and "[fetch_page]" not in out
        assert "superseded" in out
        counts = llm.stats()["by_fingerprint"]
        assert sorted(counts.values()) == [1, 1, 2], counts
    assert query(db, "SELECT status FROM runs") == [("completed",)]


def test_agent_killed_between_steps_asks_nothing_again(tmp_path: Path) -> None:
    """kill -9 while the run waits for its approval (every model call done): the rerun
    sends the model no request at all, and its stream has nothing superseded."""
    db = tmp_path / "agent.db"
    with local_model() as llm:
        proc = subprocess.Popen([sys.executable, str(AGENT), "--db", str(db),
                                 "--model-url", llm.url], cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # bounded by the agent's own end (or the kill)
                if line.startswith("Approval needed: publish"):
                    break
        finally:
            proc.kill()
            proc.communicate(timeout=10)
        assert proc.returncode == -9
        before = dict(llm.stats()["by_fingerprint"])
        assert sorted(before.values()) == [1, 1, 1], before
        rerun = run_agent("--db", str(db), "--model-url", llm.url, "--yes", cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert llm.stats()["by_fingerprint"] == before  # not one request more
    assert ANSWER in rerun.stdout and "superseded" not in rerun.stdout
    assert "[think" not in rerun.stdout and "[publish] the report" in rerun.stdout


def _two_services(example: str, where: Path) -> subprocess.CompletedProcess[str]:
    """Run an example that starts two ``duro serve`` processes, its databases in
    ``where``; it must succeed."""
    done = subprocess.run([sys.executable, str(SCRIPT.with_name(example)), "--dir",
                           str(where)], cwd=where, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_rpc_orders_example_runs_two_services_offline(tmp_path: Path) -> None:
    """``examples/rpc_orders.py``: orders calls payments' charge across two ``duro
    serve`` processes; one order paid, one declined (the callee's typed error)."""
    done = _two_services("rpc_orders.py", tmp_path)
    assert "'status': 'paid', 'payment': {'charge_id': 'ch_a-1001_1200'" in done.stdout
    assert "'status': 'payment_failed'" in done.stdout
    assert "CardDeclinedError: amount 25000 over the card's limit" in done.stdout
    assert query(tmp_path / "payments.db",
                 "SELECT COUNT(*) FROM runs WHERE workflow_name = 'payments.charge'") == [(2,)]


def test_pydantic_ai_example_runs_offline(tmp_path: Path) -> None:
    """examples/pydantic_ai_agent.py: its tools, the approved alert, the live text, and
    the usage of its three model calls; run again, it makes no call (all recorded)."""
    script = [sys.executable, str(SCRIPT.with_name("pydantic_ai_agent.py")),
              "--db", str(tmp_path / "p.db"), "--yes"]
    first = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("[call] model request") == 3
    assert "[call] send_alert(" in first.stdout and "approval " in first.stdout
    assert "result: Lyon's weather is stormy" in first.stdout
    assert "usage: 3 model calls" in first.stdout
    again = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "[call]" not in again.stdout and "result: Lyon's weather" in again.stdout


def test_rpc_agents_example_runs_two_agents_offline(tmp_path: Path) -> None:
    """``examples/rpc_agents.py``: the planner asks the researcher three questions at
    once through the typed stub; each is answered once, in the researcher's database."""
    done = _two_services("rpc_agents.py", tmp_path)
    assert "Brief: durable execution, exactly once and callbacks" in done.stdout
    assert "- What is exactly once? An operation id derived" in done.stdout
    assert query(tmp_path / "researcher.db", "SELECT COUNT(*) FROM runs WHERE "
                 "workflow_name = 'researcher.answer' AND status = 'completed'") == [(3,)]


def test_langgraph_example_runs_offline(tmp_path: Path) -> None:
    """``examples/langgraph_graph.py``: the graph's nodes as steps, the review's
    notification once across its interrupt (approved with --yes), and DuroSaver on the
    same database; run again, the durable run notifies no one (its step is recorded)."""
    script = [sys.executable, str(SCRIPT.with_name("langgraph_graph.py")),
              "--db", str(tmp_path / "g.db"), "--yes"]
    plain = "invoked plainly with DuroSaver"
    first = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert first.returncode == 0, first.stderr
    durable, _, rest = first.stdout.partition(plain)
    assert "verdict: published" in durable and "write: {'draft'" in durable
    assert durable.count("(notifying the reviewer") == 1
    assert rest.count("(notifying the reviewer") == 1 and "DuroSaver kept" in rest
    again = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert again.returncode == 0, again.stderr
    durable, _, _ = again.stdout.partition(plain)
    assert "verdict: published" in durable and "(notifying the reviewer" not in durable
