"""SMTP faults across one batch of emails: server down, hung (no greeting), 451 then OK, 550 for some mailboxes.

A TCP proxy in front of the aiosmtpd test server is cut (connection refused) or stalled
(accepts, never answers: the client must time out), and the server answers 451 to DATA for a
while. Between dispatches the injected clock moves past the back-off. Passing means: each
dispatch gives up quickly (about the configured timeout, not per message) with the reason on
every row; temporary failures are retried with back-off; 5xx mailboxes end `failed` at once with
the server's reply; once the server is well every pending email is delivered exactly once
(Message-IDs counted at the server), and a further dispatch sends nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import pytest

from engine import outbox
from engine.outbox import dispatch, enqueue
from tests.engine.smtp_server import SmtpServer
from tests.reliability.harness import TcpProxy, trials

TIMEOUT = 1.0  # seconds, from the SMTP URL
BAD = "khong.ton.tai@dieuphoi.local"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    proxy = TcpProxy(server.host, server.port).start()
    yield server, proxy
    proxy.close()
    server.stop()


def _queue(engine, n: int, tag: str) -> list[str]:
    keys = []
    with engine.db.write() as session:
        for k in range(n):
            key = f"test:{tag}:{k}"
            to = [BAD] if k % 10 == 9 else [f"nguoi{k}@dieuphoi.local"]
            enqueue(session, kind="reminder", dedupe_key=key, recipients=to, subject=f"Nhắc việc {k}",
                    text="Nội dung / body", html="", at=engine.now(), base_url=engine.settings.base_url)
            keys.append(key)
    return keys


def _dispatch(engine, url, clock):
    started = time.monotonic()
    report = dispatch(engine.db, dataclasses.replace(engine.settings, smtp_url=url), clock, limit=100)
    return report, time.monotonic() - started


def _states(engine) -> Counter:
    return Counter(m.state for m in outbox.list_messages(engine.db, limit=10_000))


def test_smtp_down_hung_and_rejecting_then_every_email_once(engine, clock, smtp):
    server, proxy = smtp
    server.refuse[BAD] = "550 5.1.1 Hộp thư không tồn tại / no such mailbox"
    url = f"smtp://127.0.0.1:{proxy.port}?timeout={TIMEOUT}"
    figures = []
    for trial in range(trials(2)):
        keys = _queue(engine, 20, str(trial))
        server.received.clear()

        proxy.cut()  # down: connection refused
        report, seconds = _dispatch(engine, url, clock)
        assert (report.sent, report.retried) == (0, 20) and seconds < TIMEOUT + 2, (report, seconds)
        assert all("Không kết nối được máy chủ thư" in m.last_error for m in outbox.list_messages(engine.db)
                   if m.state == "pending")
        proxy.restore()

        proxy.stalled = True  # hung: the TCP connection opens but no greeting ever comes
        clock.advance(minutes=2)
        report, hung_seconds = _dispatch(engine, url, clock)
        assert (report.sent, report.retried) == (0, 20), report
        assert hung_seconds < TIMEOUT * 2 + 2, hung_seconds  # one connection timeout for the batch
        assert any("timed out" in (m.last_error or "").lower() for m in outbox.list_messages(engine.db))
        proxy.unstall()

        server.data_reply = "451 4.3.0 Tạm thời không nhận / try again later"  # temporary refusal
        clock.advance(minutes=6)
        report, seconds = _dispatch(engine, url, clock)
        assert report.sent == 0 and report.failed == 2 and report.retried == 18, report  # 550 mailboxes fail now
        assert all(m.last_error.startswith("451") for m in outbox.list_messages(engine.db) if m.state == "pending")
        failed = [m for m in outbox.list_messages(engine.db) if m.state == "failed"]
        assert failed and all(": 550 5.1.1" in m.last_error for m in failed)

        report, _ = _dispatch(engine, url, clock)  # not due yet: the back-off holds
        assert (report.sent, report.retried) == (0, 0)
        server.data_reply = None  # recovered
        clock.advance(minutes=16)
        report, seconds = _dispatch(engine, url, clock)
        assert (report.sent, report.failed) == (18, 0), report
        clock.advance(hours=6)
        assert _dispatch(engine, url, clock)[0].sent == 0  # nothing is ever sent twice

        ids = Counter(m["Message-ID"] for m in server.messages)
        wanted = {outbox.message_id_for(k, engine.settings.base_url) for i, k in enumerate(keys) if i % 10 != 9}
        assert set(ids) == wanted and set(ids.values()) == {1}, ids
        for m in outbox.list_messages(engine.db, limit=10_000):
            log = outbox.attempt_log(engine.db, m.id)
            assert sum(a.ok for a in log) == (1 if m.state == "sent" else 0)
        figures.append((len(keys), round(hung_seconds, 2), dict(_states(engine))))
    print(f"smtp faults: (emails, seconds of a hung dispatch, states) per trial: {figures}")
