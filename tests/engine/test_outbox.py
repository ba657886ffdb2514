"""The outbox: emails commit with their event, reach a real SMTP server once, and survive failures visibly."""

from __future__ import annotations

import dataclasses
import threading
from datetime import date, datetime, timedelta, timezone

import pytest

from engine import outbox
from engine.db import Database
from engine.mail import render
from engine.outbox import DispatchReport, SmtpConfig, dispatch, enqueue, message_id_for
from tests.conftest import T0
from tests.engine.smtp_server import SmtpServer, make_certificate

BASE_URL = "http://127.0.0.1:5000"
DUE = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)  # 17:00 on Friday 4 December in Hanoi


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


def _settings(engine, smtp_url: str | None):
    return dataclasses.replace(engine.settings, smtp_url=smtp_url)


def _send(engine, server: SmtpServer | None = None, *, url: str | None = None, **kwargs) -> DispatchReport:
    smtp_url = url if url is not None else (server.url() if server else None)
    return dispatch(engine.db, _settings(engine, smtp_url), engine.clock, **kwargs)


def _queue(engine, key: str = "assigned:t1", recipients=("nn.cv@dieuphoi.local",), **facts) -> bool:
    context = dict(base_url=BASE_URL, task_id="t1", instance_id=None, task_title="Thẩm định đề cương đề tài",
                   case_title="Ứng dụng IoT trong nuôi tôm nước lợ", case_code="KHCN-2026-042",
                   process_title="Xét duyệt đề tài KH&CN cấp tỉnh", unit_name="Sở Khoa học và Công nghệ", due_at=DUE,
                   recipients=[{"full_name": "Nguyễn Văn A", "email": r} for r in recipients])
    context.update(facts)
    subject, text, html = render("task_assigned", context)
    with engine.db.write() as session:
        return enqueue(session, kind="task_assigned", dedupe_key=key, recipients=list(recipients), subject=subject,
                       text=text, html=html, at=engine.now(), base_url=BASE_URL, task_id=context["task_id"])


def _only(engine) -> outbox.MessageSummary:
    messages = outbox.list_messages(engine.db)
    assert len(messages) == 1
    return messages[0]


# ------------------------------------------------------------------ enqueue
def test_email_rolled_back_with_its_transaction_is_never_queued(engine):
    with pytest.raises(RuntimeError):
        with engine.db.write() as session:
            enqueue(session, kind="reminder", dedupe_key="remind:t1", recipients=["a@x.vn"], subject="s", text="t",
                    html="", at=engine.now(), base_url=BASE_URL)
            raise RuntimeError("the event failed")
    assert outbox.list_messages(engine.db) == []


def test_same_dedupe_key_queues_one_email(engine):
    assert _queue(engine) is True
    assert _queue(engine) is False
    message = _only(engine)
    assert (message.state, message.attempts, message.recipients) == ("pending", 0, ["nn.cv@dieuphoi.local"])
    assert message.message_id == message_id_for("assigned:t1", BASE_URL)
    assert message.next_attempt_at == T0 and outbox.pending_count(engine.db) == 1


def test_email_without_recipients_is_skipped(engine):
    assert _queue(engine, recipients=()) is False
    assert _queue(engine, recipients=("", " ")) is False
    assert outbox.list_messages(engine.db) == []


# ------------------------------------------------------------------ delivery
def test_server_receives_the_email_with_link_deadline_and_stable_message_id(engine, smtp_server):
    _queue(engine, recipients=("nn.cv@dieuphoi.local", "nn.cv2@dieuphoi.local"))

    assert _send(engine, smtp_server) == DispatchReport(sent=1)

    [got] = smtp_server.received
    assert got.mail_from == "dieuphoi@127.0.0.1"
    assert got.rcpt_tos == ["nn.cv@dieuphoi.local", "nn.cv2@dieuphoi.local"]
    msg = got.message
    assert msg["To"] == "nn.cv@dieuphoi.local, nn.cv2@dieuphoi.local"
    assert msg["From"] == "Điều Phối <dieuphoi@127.0.0.1>"
    assert msg["Subject"] == "Việc cần xử lý: Thẩm định đề cương đề tài – Hồ sơ KHCN-2026-042"
    assert msg["Message-ID"] == message_id_for("assigned:t1", BASE_URL)
    assert msg["Message-ID"] == f"<{__import__('hashlib').sha256(b'assigned:t1').hexdigest()[:32]}@127.0.0.1>"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "http://127.0.0.1:5000/tasks/t1" in body
        assert "04/12/2026 17:00" in body and "Hạn xử lý" in body
        assert "Điều Phối" in body
    assert "Xét duyệt đề tài KH&amp;CN cấp tỉnh" in html  # autoescaped
    message = _only(engine)
    assert (message.state, message.attempts, message.sent_at, message.last_error) == ("sent", 1, T0, None)
    assert [(a.ok, a.error) for a in outbox.attempt_log(engine.db, message.id)] == [(True, None)]


def test_dispatching_again_sends_nothing_more(engine, smtp_server):
    _queue(engine)
    assert _send(engine, smtp_server).sent == 1
    engine.clock.advance(days=1)
    assert _send(engine, smtp_server) == DispatchReport()
    assert _queue(engine) is False  # the event firing again queues nothing either
    assert len(smtp_server.received) == 1 and outbox.pending_count(engine.db) == 0


def test_two_dispatchers_in_two_threads_deliver_each_email_exactly_once(engine, smtp_server):
    keys = [f"escalation:t{i}:1" for i in range(24)]
    for key in keys:
        _queue(engine, key=key)
    second = Database.from_settings(engine.settings)
    settings = _settings(engine, smtp_server.url())
    start = threading.Barrier(2)
    reports: list[DispatchReport] = []
    errors: list[BaseException] = []

    def worker(db: Database) -> None:
        try:
            start.wait()
            while True:
                report = dispatch(db, settings, engine.clock, limit=3)
                reports.append(report)
                if report == DispatchReport():
                    return
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(db,)) for db in (engine.db, second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        second.dispose()
    assert not errors
    received = sorted(m["Message-ID"] for m in smtp_server.messages)
    assert received == sorted(message_id_for(k, BASE_URL) for k in keys)  # each once, none missing
    assert sum(r.sent for r in reports) == len(keys)
    assert {m.state for m in outbox.list_messages(engine.db)} == {"sent"}
    assert all(m.attempts == 1 for m in outbox.list_messages(engine.db))


# ------------------------------------------------------------------ failures
def test_server_down_backs_off_and_sends_once_it_is_back(engine, smtp_server):
    _queue(engine)
    smtp_server.stop()

    assert _send(engine, smtp_server) == DispatchReport(retried=1)
    message = _only(engine)
    assert (message.state, message.attempts) == ("pending", 1)
    assert message.next_attempt_at == T0 + timedelta(minutes=1)
    assert "cannot connect" in message.last_error and "Connection refused" in message.last_error
    [attempt] = outbox.attempt_log(engine.db, message.id)
    assert attempt.ok is False and attempt.at == T0

    smtp_server.start()
    assert _send(engine, smtp_server) == DispatchReport()  # not due yet
    engine.clock.advance(minutes=1)
    assert _send(engine, smtp_server) == DispatchReport(sent=1)
    assert _only(engine).state == "sent" and len(smtp_server.received) == 1
    assert [a.ok for a in outbox.attempt_log(engine.db, message.id)] == [False, True]


def test_mailbox_refused_with_550_fails_at_once_with_the_servers_reason(engine, smtp_server):
    _queue(engine)
    smtp_server.rcpt_reply = "550 5.1.1 No such mailbox"

    assert _send(engine, smtp_server) == DispatchReport(failed=1)
    message = _only(engine)
    assert message.state == "failed" and message.attempts == 1
    assert "550" in message.last_error and "No such mailbox" in message.last_error
    engine.clock.advance(days=1)
    assert _send(engine, smtp_server) == DispatchReport()
    assert smtp_server.received == []


def test_one_refused_mailbox_does_not_stop_the_others(engine, smtp_server):
    _queue(engine, recipients=("nn.cv@dieuphoi.local", "old.mailbox@dieuphoi.local"))
    smtp_server.refuse["old.mailbox@dieuphoi.local"] = "550 5.1.1 No such mailbox"

    assert _send(engine, smtp_server) == DispatchReport(sent=1)
    assert smtp_server.received[0].rcpt_tos == ["nn.cv@dieuphoi.local"]
    message = _only(engine)
    assert message.state == "sent" and "old.mailbox@dieuphoi.local: 550" in message.last_error


def test_message_rejected_at_data_with_554_fails(engine, smtp_server):
    _queue(engine)
    smtp_server.data_reply = "554 5.6.0 Message content rejected"
    assert _send(engine, smtp_server) == DispatchReport(failed=1)
    assert "554" in _only(engine).last_error


def test_greylisting_451_is_retried_later(engine, smtp_server):
    _queue(engine)
    smtp_server.rcpt_reply = "451 4.7.1 Greylisted, try again later"

    assert _send(engine, smtp_server) == DispatchReport(retried=1)
    message = _only(engine)
    assert (message.state, message.next_attempt_at) == ("pending", T0 + timedelta(minutes=1))
    assert "451" in message.last_error

    smtp_server.rcpt_reply = None
    engine.clock.advance(minutes=1)
    assert _send(engine, smtp_server) == DispatchReport(sent=1)
    assert _only(engine).attempts == 2


def test_eight_failed_attempts_give_up_after_the_backoff_ladder(engine, smtp_server):
    _queue(engine)
    smtp_server.stop()
    waits = []
    for attempt in range(1, 9):
        report = _send(engine, smtp_server)
        message = _only(engine)
        assert message.attempts == attempt
        if attempt < 8:
            assert report == DispatchReport(retried=1) and message.state == "pending"
            waits.append(message.next_attempt_at - engine.now())
            engine.clock.set(message.next_attempt_at)
    assert report == DispatchReport(failed=1) and message.state == "failed"
    assert waits == [timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 360)]
    assert len(outbox.attempt_log(engine.db, message.id)) == 8
    assert outbox.list_messages(engine.db, state="failed")[0].id == message.id


def test_retry_puts_a_failed_email_back_and_it_is_sent(engine, smtp_server):
    _queue(engine)
    smtp_server.rcpt_reply = "550 5.7.1 Relaying denied"
    _send(engine, smtp_server)
    failed = _only(engine)
    assert failed.state == "failed"

    smtp_server.rcpt_reply = None
    engine.clock.advance(hours=2)
    assert outbox.retry(engine.db, [failed.id, 999], engine.clock) == 1
    message = _only(engine)
    assert (message.state, message.attempts, message.next_attempt_at) == ("pending", 0, engine.now())
    assert outbox.retry(engine.db, [failed.id], engine.clock) == 0  # only failed ones
    assert _send(engine, smtp_server) == DispatchReport(sent=1)
    assert len(smtp_server.received) == 1


class WorkerDied(BaseException):
    """Stands for a worker killed between committing its claim and sending."""


def test_sending_lease_of_a_dead_worker_expires_and_the_email_is_sent(engine, smtp_server):
    _queue(engine)

    def die():
        raise WorkerDied

    with pytest.raises(WorkerDied):
        dispatch(engine.db, _settings(engine, smtp_server.url()), engine.clock, lease_seconds=300, smtp_factory=die)
    message = _only(engine)
    assert (message.state, message.attempts, message.next_attempt_at) == ("sending", 1, T0 + timedelta(minutes=5))

    engine.clock.advance(minutes=4)
    assert _send(engine, smtp_server) == DispatchReport()  # still leased
    engine.clock.advance(minutes=1)
    assert _send(engine, smtp_server) == DispatchReport(sent=1)
    message = _only(engine)
    assert (message.state, message.attempts) == ("sent", 2)
    log = outbox.attempt_log(engine.db, message.id)
    assert [a.ok for a in log] == [False, True] and "lease expired" in log[0].error


def test_email_that_kills_every_worker_is_given_up_after_eight_leases(engine, smtp_server):
    _queue(engine)
    settings = _settings(engine, smtp_server.url())

    def die():
        raise WorkerDied

    for _ in range(8):
        with pytest.raises(WorkerDied):
            dispatch(engine.db, settings, engine.clock, smtp_factory=die)
        engine.clock.advance(minutes=5)
    assert dispatch(engine.db, settings, engine.clock) == DispatchReport(failed=1)
    message = _only(engine)
    assert (message.state, message.attempts, message.next_attempt_at) == ("failed", 8, engine.now())
    assert "gave up after 8 attempts" in message.last_error
    assert len(outbox.attempt_log(engine.db, message.id)) == 8 and smtp_server.received == []


def test_without_smtp_url_emails_stay_in_the_outbox(engine, smtp_server):
    _queue(engine)
    assert engine.settings.smtp_url is None
    assert dispatch(engine.db, engine.settings, engine.clock) == DispatchReport()
    message = _only(engine)
    assert (message.state, message.attempts) == ("pending", 0)
    assert outbox.pending_count(engine.db) == 1 and smtp_server.received == []


# ----------------------------------------------------------------------- TLS
def test_starttls_then_login_delivers(engine, certificate):
    server = SmtpServer(tls="starttls", certificate=certificate).start()
    try:
        _queue(engine)
        assert _send(engine, url=server.url(verify="0")) == DispatchReport(sent=1)
        assert server.logins == [("LOGIN", "chuyenvien@sokhcn.gov.vn")]
        assert server.received[0].message["Message-ID"] == message_id_for("assigned:t1", BASE_URL)
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd: it is implicit TLS
def test_implicit_tls_smtps_delivers(engine, certificate):
    server = SmtpServer(tls="implicit", certificate=certificate).start()
    try:
        _queue(engine)
        assert _send(engine, url=server.url(verify="0")) == DispatchReport(sent=1)
        assert len(server.received) == 1 and server.logins
    finally:
        server.stop()


def test_untrusted_certificate_is_refused_unless_verification_is_off(engine, certificate):
    server = SmtpServer(tls="starttls", certificate=certificate).start()
    try:
        _queue(engine)
        assert _send(engine, url=server.url()) == DispatchReport(retried=1)
        assert "CERTIFICATE_VERIFY_FAILED" in _only(engine).last_error
        assert server.received == []
    finally:
        server.stop()


# -------------------------------------------------------------- SMTP URL
def test_smtp_url_forms():
    plain = SmtpConfig.parse("smtp://127.0.0.1:8025")
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls, plain.username) == ("127.0.0.1", 8025, False,
                                                                                          False, None)
    assert plain.timeout == 10 and plain.verify
    tls = SmtpConfig.parse("smtp://cv%40so.gov.vn:p%40ss%3Aw%2Frd@mail.so.gov.vn:587?starttls=1&timeout=3")
    assert (tls.username, tls.password, tls.starttls, tls.timeout) == ("cv@so.gov.vn", "p@ss:w/rd", True, 3.0)
    implicit = SmtpConfig.parse("smtps://u:p@mail.so.gov.vn?verify=0")
    assert (implicit.port, implicit.implicit_tls, implicit.verify) == (465, True, False)
    with pytest.raises(ValueError):
        SmtpConfig.parse("http://mail.so.gov.vn")


def test_sender_comes_from_the_environment_or_the_base_url(monkeypatch):
    monkeypatch.delenv("DIEUPHOI_MAIL_FROM", raising=False)
    assert outbox.mail_from("https://dieuphoi.tinh.gov.vn/app") == "dieuphoi@dieuphoi.tinh.gov.vn"
    monkeypatch.setenv("DIEUPHOI_MAIL_FROM", "Sở KH&CN <noreply@sokhcn.gov.vn>")
    assert outbox.mail_from(BASE_URL) == "Sở KH&CN <noreply@sokhcn.gov.vn>"
    message = outbox.build_message({"recipients": ["a@x.vn"], "subject": "Thử", "kind": "reminder",
                                    "message_id": "<1@x>", "body_text": "t", "body_html": ""},
                                   outbox.mail_from(BASE_URL), T0)
    assert message["From"].addresses[0].addr_spec == "noreply@sokhcn.gov.vn"
    assert message.get_content_type() == "text/plain"


# --------------------------------------------------------------- templates
FACTS = dict(base_url=BASE_URL + "/", task_id="t7", instance_id=42, task_title="Phê duyệt <kết quả> & kinh phí",
             case_title="Đề tài IoT", case_code="KHCN-2026-042", process_title="Xét duyệt đề tài",
             unit_name="Sở Khoa học và Công nghệ", due_at=DUE, recipients=[{"full_name": "Trần Thị B"}])


@pytest.mark.parametrize("kind, facts, subject_start", [
    ("task_assigned", {}, "Việc cần xử lý: "),
    ("task_assigned_unit", {}, "Việc chờ nhận: "),
    ("reminder", {}, "[Nhắc việc] "),
    ("escalation", {"overdue_days": 3, "level": 2, "assignee_name": "Lê Văn C"}, "[Cảnh báo quá hạn] "),
    ("returned", {"reason": "Thiếu dự toán", "actor_name": "Nguyễn Văn A", "acting_for_name": "Trần Thị B"},
     "[Trả lại] "),
    ("decision", {"outcome": "approved", "task_title": None}, "Kết quả xử lý hồ sơ KHCN-2026-042: Đồng ý"),
])
def test_every_kind_renders_vietnamese_then_english_with_link_and_footer(kind, facts, subject_start):
    subject, text, html = render(kind, {**FACTS, **facts})
    assert subject.startswith(subject_start) and "\n" not in subject
    link = "http://127.0.0.1:5000/instances/42" if kind == "decision" else "http://127.0.0.1:5000/tasks/t7"
    for body in (text, html):
        assert link in body
        assert "thư tự động từ hệ thống Điều Phối" in body and "automatic message from Điều Phối" in body
    assert text.index("Kính gửi") < text.index("English")
    if kind != "decision":
        assert "Phê duyệt <kết quả> & kinh phí" in text and "<kết quả>" not in html
        assert "Phê duyệt &lt;kết quả&gt; &amp; kinh phí" in html
        assert "Hạn xử lý: 04/12/2026 17:00" in text


def test_escalation_says_days_overdue_level_unit_and_assignee():
    subject, text, _ = render("escalation", {**FACTS, "overdue_days": 3, "level": 2, "assignee_name": "Lê Văn C"})
    assert subject == "[Cảnh báo quá hạn] Phê duyệt <kết quả> & kinh phí – quá hạn 3 ngày làm việc"
    assert "quá hạn xử lý 3 ngày làm việc (cảnh báo mức 2)" in text
    assert "Đơn vị xử lý: Sở Khoa học và Công nghệ" in text and "Người được giao: Lê Văn C" in text
    _, unclaimed, _ = render("escalation", {**FACTS, "overdue_days": 1, "level": 1, "assignee_name": ""})
    assert "Người được giao: chưa có người nhận xử lý" in unclaimed and "1 working day overdue" in unclaimed


def test_returned_names_the_substitute_and_the_reason():
    _, text, html = render("returned", {**FACTS, "reason": "Thiếu dự toán <chi tiết>", "actor_name": "Nguyễn Văn A",
                                        "acting_for_name": "Trần Thị B"})
    assert "Người trả lại: Nguyễn Văn A (xử lý thay Trần Thị B)" in text
    assert "Lý do trả lại: Thiếu dự toán <chi tiết>" in text and "Thiếu dự toán &lt;chi tiết&gt;" in html


def test_digest_counts_tasks_due_today_and_overdue():
    items = [{"task_title": f"Việc {i}", "task_id": f"t{i}", "due_at": DUE} for i in range(3)]
    subject, text, html = render("digest", {"base_url": BASE_URL, "date": date(2026, 11, 30), "due_today": items,
                                            "overdue": [{"title": "Việc cũ", "task_id": "t9", "overdue_days": 2}]})
    assert subject == "Việc cần xử lý ngày 30/11/2026: 3 việc đến hạn hôm nay, 1 việc quá hạn"
    assert "http://127.0.0.1:5000/tasks/t9" in text and "(quá hạn 2 ngày làm việc)" in text
    assert "3 tasks due today, 1 overdue." in text and "3 việc đến hạn hôm nay, 1 việc quá hạn" in html


def test_unknown_kind_or_missing_reason_is_refused():
    with pytest.raises(ValueError):
        render("newsletter", FACTS)
    with pytest.raises(ValueError, match="reason"):
        render("returned", FACTS)


def test_decision_names_the_outcome_in_both_languages():
    subject, text, _ = render("decision", {**FACTS, "task_title": None, "outcome": "tu_choi",
                                           "reason": "Trùng lặp với đề tài đã có"})
    assert subject == "Kết quả xử lý hồ sơ KHCN-2026-042: Từ chối"
    assert "Ý kiến: Trùng lặp với đề tài đã có" in text and ": rejected." in text
    assert render("decision", {**FACTS, "outcome": "da_ky"})[0].endswith(": da_ky")  # unknown values shown as they are
