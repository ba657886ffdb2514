"""`dieuphoi serve --processes 2`: two web processes behind one port (gunicorn's arbiter and workers).

1. Both processes take connections, and cases submitted and approved through both at once end
   completed with nothing half-applied (invariants).
2. SIGKILL of one web process while clients complete tasks: the arbiter starts a replacement,
   the other process goes on answering, every acknowledged completion is stored with its data,
   and every request left without an answer was applied entirely or not at all.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import threading
from pathlib import Path
from uuid import uuid4

from tests.engine.helpers import only_open_task
from tests.reliability.conftest import deploy_approval
from tests.reliability.harness import Client, History, issue_tokens, scalar, wait_until
from tests.reliability.invariants import violations
from tests.reliability.test_kill_server import step_data

CLIENTS = 8


def _established_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established TCP connections on the server's port each process holds open."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            held += bool(match and match.group(1) in inodes)
        counts[pid] = held
    return counts


def _drive(staff: Client, boss: Client, base_url: str, queue: list[int], first_task: dict, lock: threading.Lock):
    """Submit then approve cases from the shared queue until it is empty or a request goes unanswered."""
    while True:
        with lock:
            if not queue:
                return
            iid = queue.pop()
        op = staff.act(base_url, "complete", first_task[iid], {"case": iid, "nonce": uuid4().hex})
        if not op.acked:
            return
        op = boss.act(base_url, "complete", op.body["next_tasks"][0]["id"], {"duyet": True, "nonce": uuid4().hex})
        if not op.acked:
            return


def _clients(tokens: dict, history: History) -> list[tuple[Client, Client]]:
    return [(Client(f"nn.cv#{k}", tokens["nn.cv"], history), Client(f"nn.ld#{k}", tokens["nn.ld"], history))
            for k in range(CLIENTS)]


def _run(pairs, base_url: str, ids: list[int], first_task: dict) -> list[threading.Thread]:
    lock, queue = threading.Lock(), list(ids)
    threads = [threading.Thread(target=_drive, args=(staff, boss, base_url, queue, first_task, lock))
               for staff, boss in pairs]
    for t in threads:
        t.start()
    return threads


def _two_processes(engine, people, cluster, cases: int):
    """Tokens, `cases` new approvals with their first task, and `serve --processes 2` with its two workers."""
    deploy_approval(engine, ladder=None)
    tokens = issue_tokens(engine, people, ["nn.cv", "nn.ld"])
    ids = [engine.start_instance(people["nn.cv"], "duyet") for _ in range(cases)]
    first_task = {iid: only_open_task(engine, iid).id for iid in ids}
    server = cluster.serve(processes=2)
    workers = wait_until(lambda: len(server.children()) == 2 and server.children(), 30, "two web processes")
    return tokens, ids, first_task, server, workers


def test_two_web_processes_take_connections_and_complete_cases_together(engine, people, cluster, db_url):
    tokens, ids, first_task, server, workers = _two_processes(engine, people, cluster, 3 * CLIENTS)

    # The kernel spreads connections over the processes' SO_REUSEPORT sockets by address hash: of
    # 32 kept-alive connections, both processes hold some (all on one: odds 2 in 2^32).
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(32)]
    for conn in connections:
        conn.request("GET", "/api/v1/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    held = _established_by_process(server.port, workers)
    for conn in connections:
        conn.close()
    assert sum(held.values()) == len(connections), held
    assert all(n >= 1 for n in held.values()), f"one process took every connection: {held}"
    print(f"32 connections held per web process: {sorted(held.values())}")

    history = History()
    pairs = _clients(tokens, history)
    for t in _run(pairs, server.url, ids, first_task):
        t.join(60)
    assert history.outcomes() == {"ok": 2 * len(ids)}, [(op.status, op.error, op.body) for op in history.ops
                                                         if not op.acked][:5]
    done = scalar(engine, "SELECT count(*) FROM instances WHERE status = 'completed' AND process_key = 'duyet'")
    assert done == len(ids)
    assert violations(db_url) == [], cluster.tails()
    assert server.poll() is None and server.children() == workers  # nobody died on the way


def test_killed_web_process_is_replaced_and_loses_nothing_acknowledged(engine, people, cluster, db_url):
    tokens, ids, first_task, server, workers = _two_processes(engine, people, cluster, 5 * CLIENTS)

    history = History()
    pairs = _clients(tokens, history)
    threads = _run(pairs, server.url, ids, first_task)
    wait_until(lambda: sum(op.acked for op in history.ops) >= len(ids) // 2, 60, "half the completions",
               interval=0.005)
    os.kill(workers[0], signal.SIGKILL)  # mid-load: it holds requests in flight
    for t in threads:
        t.join(60)
    replaced = wait_until(lambda: (len(server.children()) == 2 and workers[0] not in server.children()
                                   and server.children()), 30, "the arbiter to replace the killed process",
                          alive=[server])
    assert workers[1] in replaced  # the other process was never interrupted

    acked = [op for op in history.ops if op.acked]
    unanswered = [op for op in history.ops if not op.acked]
    assert all(op.status is None for op in unanswered), [(op.status, op.body) for op in unanswered]
    for op in acked:
        assert scalar(engine, "SELECT state FROM human_tasks WHERE id = :id", id=op.task_id) == "completed", op
        assert step_data(engine, op.task_id)["nonce"] == op.data["nonce"], op
    assert violations(db_url) == [], cluster.tails()

    # The cases the dead process's clients left: sending the unanswered request again says whether it
    # was applied (409) or not (200); then every case can be finished through the restarted server.
    retry = History()
    for op in unanswered:
        before = scalar(engine, "SELECT state FROM human_tasks WHERE id = :id", id=op.task_id)
        user = "nn.cv" if "case" in op.data else "nn.ld"
        again = Client("retry", tokens[user], retry).act(server.url, "complete", op.task_id, op.data)
        assert again.status == (409 if before == "completed" else 200), (op, before, again.status, again.body)
    for iid in ids:
        for _ in range(2):
            task = scalar(engine, "SELECT id FROM human_tasks WHERE instance_id = :i AND state = 'open'", i=iid)
            if task is None:
                break
            who = "nn.cv" if scalar(engine, "SELECT role FROM human_tasks WHERE id = :id", id=task) == "staff" \
                else "nn.ld"
            data = {"case": iid, "nonce": "x"} if who == "nn.cv" else {"duyet": True}
            assert Client("finish", tokens[who], retry).act(server.url, "complete", task, data).acked
    assert scalar(engine, "SELECT count(*) FROM instances WHERE status = 'completed' AND process_key = 'duyet'") \
        == len(ids)
    assert violations(db_url) == []
    print(f"one of two web processes killed mid-load: {len(acked)} completions acknowledged, "
          f"{len(unanswered)} unanswered")


def test_a_port_in_use_is_refused_with_a_clear_message(cluster, tmp_path):
    """Per-process SO_REUSEPORT sockets would share a port with another server quietly: refused first."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as another `serve --processes` binds
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = cluster.serve(port=port, processes=2, wait=False)
        assert proc.popen.wait(timeout=30) != 0
        log = proc.log_path.read_text(errors="replace")
        assert f"Cổng 127.0.0.1:{port} đang được dùng" in log and "is in use" in log, log
