"""The email outbox: written in the caller's transaction, claimed with a lease, sent over SMTP at least once.

An email is a row inserted in the same transaction as the event that caused it, so it exists
exactly when the event does; its unique dedupe key makes a second enqueue of the same email a
no-op. `dispatch` claims due rows in one short transaction (state 'sending', the lease expiry
kept in `next_attempt_at`), commits, sends outside any transaction, then records each outcome
in its own short transaction. A worker that dies between the claim and the record leaves a
'sending' row whose lease expires and is claimed again: delivery is at least once, and every
message carries a Message-ID derived from its dedupe key so a duplicate is recognisable.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Callable, Iterable
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.config import Settings
from engine.db import Database
from engine.models import OutboxAttempt, OutboxMessage
from engine.store import Store

log = logging.getLogger(__name__)

STATES = ("pending", "sending", "sent", "failed")
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360)  # after the 1st, 2nd, ... failed attempt; the last repeats
MAX_ATTEMPTS = 8
DEFAULT_TIMEOUT = 10.0
SENDER_NAME = "Điều Phối"


# ------------------------------------------------------------------ addresses
def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "dieuphoi.local"


def message_id_for(dedupe_key: str, base_url: str) -> str:
    """The same dedupe key always gives the same Message-ID, so a re-sent email is recognisably the same."""
    return f"<{hashlib.sha256(dedupe_key.encode('utf-8')).hexdigest()[:32]}@{_host(base_url)}>"


def mail_from(base_url: str) -> str:
    """The sender: DIEUPHOI_MAIL_FROM (an address, or 'Name <address>'), else dieuphoi@<host of base_url>."""
    return os.environ.get("DIEUPHOI_MAIL_FROM") or f"dieuphoi@{_host(base_url)}"


# -------------------------------------------------------------------- enqueue
def enqueue(session: Session, *, kind: str, dedupe_key: str, recipients: list[str], subject: str, text: str,
            html: str, at: datetime, base_url: str, instance_id: int | None = None,
            task_id: str | None = None) -> bool:
    """Queue one email in the caller's transaction; False if its dedupe key is already queued or nobody receives it."""
    if at.tzinfo is None:
        raise ValueError("enqueue needs an aware datetime (UTC is stored)")
    addresses = list(dict.fromkeys(a.strip() for a in recipients if a and a.strip()))
    if not addresses:
        return False
    result = Store(session).execute(
        "INSERT INTO outbox (dedupe_key, kind, recipients, subject, body_text, body_html, message_id, instance_id, "
        "task_id, state, attempts, next_attempt_at, created_at) VALUES (:dedupe_key, :kind, :recipients, :subject, "
        ":body_text, :body_html, :message_id, :instance_id, :task_id, 'pending', 0, :at, :at) "
        "ON CONFLICT (dedupe_key) DO NOTHING",
        dedupe_key=dedupe_key, kind=kind, recipients=json.dumps(addresses, ensure_ascii=False),
        subject=subject[:500], body_text=text, body_html=html or "", message_id=message_id_for(dedupe_key, base_url),
        instance_id=instance_id, task_id=task_id, at=at,
    )
    return result.rowcount == 1


# ----------------------------------------------------------------------- SMTP
@dataclass(frozen=True)
class SmtpConfig:
    """Parsed DIEUPHOI_SMTP_URL: smtp://host:port, smtp://user:pass@host:port?starttls=1, smtps://user:pass@host:port."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    verify: bool = True

    @classmethod
    def parse(cls, url: str) -> "SmtpConfig":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"DIEUPHOI_SMTP_URL phải có dạng smtp://host:port hoặc smtps://host:port / "
                             f"must look like smtp://host:port or smtps://host:port, not {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls=not implicit and query.get("starttls", "0").lower() in ("1", "true", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            timeout=float(query.get("timeout", DEFAULT_TIMEOUT)),
            verify=query.get("verify", "1").lower() not in ("0", "false", "no"),
        )

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:  # self-signed certificates in tests and closed networks
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> smtplib.SMTP:
        """A client ready to send: connected, TLS if asked, logged in if the URL names a user."""
        if self.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                    context=self.tls_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            client.ehlo()
            if self.starttls:
                client.starttls(context=self.tls_context())
                client.ehlo()
            if self.username:
                client.login(self.username, self.password or "")
        except BaseException:
            client.close()
            raise
        return client


def build_message(row: dict, sender: str, at: datetime) -> EmailMessage:
    """multipart/alternative (text + HTML) with the stored Message-ID; UTF-8 headers are RFC 2047 encoded."""
    msg = EmailMessage()
    name, addr = email.utils.parseaddr(sender)
    msg["From"] = Address(display_name=name or SENDER_NAME, addr_spec=addr or sender)
    msg["To"] = ", ".join(row["recipients"])
    msg["Subject"] = " ".join(row["subject"].split())
    msg["Date"] = email.utils.format_datetime(at)
    msg["Message-ID"] = row["message_id"]
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies back to us
    msg["X-Dieuphoi-Kind"] = row["kind"]
    msg.set_content(row["body_text"])
    if row["body_html"]:
        msg.add_alternative(row["body_html"], subtype="html")
    return msg


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{addr}: {code} {_text(reply)}" for addr, (code, reply) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        sender = f" ({exc.sender})" if isinstance(exc, smtplib.SMTPSenderRefused) else ""
        return f"{exc.smtp_code} {_text(exc.smtp_error)}{sender}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _is_permanent(exc: BaseException) -> bool:
    """5xx for the sender, the recipients or the data is final; connection trouble and 4xx are worth a retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)):
        return exc.smtp_code >= 500
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500 and not isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPConnectError))
    if isinstance(exc, (OSError, smtplib.SMTPException)):  # refused, timeout, TLS, disconnect
        return False
    return True  # a message we cannot even build (a malformed address) will not get better


# ------------------------------------------------------------------- dispatch
@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed attempt."""
    return timedelta(minutes=BACKOFF_MINUTES[min(max(attempts, 1), len(BACKOFF_MINUTES)) - 1])


_CLAIM_COLUMNS = "id, kind, recipients, subject, body_text, body_html, message_id, state, attempts"


def _claim(db: Database, now: datetime, limit: int, lease_seconds: float) -> tuple[list[dict], int]:
    """Due rows -> 'sending' with a lease, committed before anything is sent; also how many were given up.

    PostgreSQL: FOR UPDATE SKIP LOCKED lets concurrent dispatchers take disjoint batches.
    SQLite: the write transaction starts with BEGIN IMMEDIATE, so claims are serialised.
    """
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.write() as session:
        store = Store(session)
        rows = store.rows(
            f"SELECT {_CLAIM_COLUMNS} FROM outbox WHERE state IN ('pending', 'sending') AND next_attempt_at <= :now "
            "ORDER BY next_attempt_at, id LIMIT :limit" + ("" if store.sqlite else " FOR UPDATE SKIP LOCKED"),
            now=now, limit=limit,
        )
        claimed, given_up = [], 0
        for row in rows:
            if row["state"] == "sending":  # its worker died after claiming: the email may already have gone
                _attempt(store, row["id"], now, False, "Hết thời hạn giữ thư, gửi lại / lease expired: the worker "
                                                      "stopped before recording the outcome; duplicate possible")
            if row["attempts"] >= MAX_ATTEMPTS:
                error = f"Đã thử {row['attempts']} lần / gave up after {row['attempts']} attempts (lease expired)"
                store.execute("UPDATE outbox SET state = 'failed', last_error = :error, next_attempt_at = :now "
                              "WHERE id = :id", id=row["id"], now=now, error=error)
                given_up += 1
                continue
            store.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1, next_attempt_at = :lease "
                          "WHERE id = :id", id=row["id"], lease=lease_until)
            row["attempts"] += 1
            if isinstance(row["recipients"], str):
                row["recipients"] = json.loads(row["recipients"])
            claimed.append(row)
        return claimed, given_up


def _attempt(store: Store, outbox_id: int, at: datetime, ok: bool, error: str | None) -> None:
    store.execute("INSERT INTO outbox_attempts (outbox_id, at, ok, error) VALUES (:outbox_id, :at, :ok, :error)",
                  outbox_id=outbox_id, at=at, ok=ok, error=error)


def _record(db: Database, row: dict, now: datetime, *, sent: bool, error: str | None, permanent: bool) -> str:
    """One short transaction per outcome; returns the new state."""
    with db.write() as session:
        store = Store(session)
        _attempt(store, row["id"], now, sent, error)
        if sent:  # `error` may list recipients refused while the others accepted
            store.execute("UPDATE outbox SET state = 'sent', sent_at = :now, last_error = :error "
                          "WHERE id = :id AND state = 'sending'", id=row["id"], now=now, error=error)
            return "sent"
        if permanent or row["attempts"] >= MAX_ATTEMPTS:
            store.execute("UPDATE outbox SET state = 'failed', last_error = :error, next_attempt_at = :now "
                          "WHERE id = :id AND state = 'sending'", id=row["id"], error=error, now=now)
            return "failed"
        store.execute("UPDATE outbox SET state = 'pending', next_attempt_at = :next, last_error = :error "
                      "WHERE id = :id AND state = 'sending'", id=row["id"], next=now + backoff(row["attempts"]),
                      error=error)
        return "pending"


def _release(db: Database, ids: Iterable[int], now: datetime) -> None:
    """Give back claimed rows we ran out of lease time to send: no attempt was made, none is counted."""
    with db.write() as session:
        store = Store(session)
        for outbox_id in ids:
            store.execute("UPDATE outbox SET state = 'pending', attempts = attempts - 1, next_attempt_at = :now "
                          "WHERE id = :id AND state = 'sending'", id=outbox_id, now=now)


def dispatch(db: Database, settings: Settings, clock: Clock, *, limit: int = 50, lease_seconds: float = 300,
             smtp_factory: Callable[[], smtplib.SMTP] | None = None) -> DispatchReport:
    """Send the due emails once each: claim, commit, send outside any transaction, record each outcome.

    Without DIEUPHOI_SMTP_URL (and no `smtp_factory`) nothing is sent: the emails wait in the
    outbox, where administrators see them.
    """
    report = DispatchReport()
    if smtp_factory is None:
        if not settings.smtp_url:
            return report
        config = SmtpConfig.parse(settings.smtp_url)
        smtp_factory, timeout = config.connect, config.timeout
    else:
        timeout = DEFAULT_TIMEOUT
    rows, report.failed = _claim(db, clock.now(), limit, lease_seconds)
    if not rows:
        return report
    sender = mail_from(settings.base_url)
    envelope_from = email.utils.parseaddr(sender)[1] or sender
    # Stop early rather than send past our lease, when another dispatcher may take the rows again.
    budget_ends = time.monotonic() + lease_seconds - min(timeout + 5, lease_seconds / 2)
    client: smtplib.SMTP | None = None
    connect_error: str | None = None
    try:
        for index, row in enumerate(rows):
            if time.monotonic() > budget_ends:
                _release(db, [r["id"] for r in rows[index:]], clock.now())
                break
            if connect_error is None and client is None:
                try:
                    client = smtp_factory()
                except Exception as exc:  # the server is down or refuses us: every row of this batch waits
                    connect_error = f"Không kết nối được máy chủ thư / cannot connect: {_describe(exc)}"
            if connect_error is not None:
                sent, error, permanent = False, connect_error, False
            else:
                sent, error, permanent, broken = _send_one(client, row, sender, envelope_from, clock.now())
                if broken:  # the connection is gone; the next row opens a new one
                    _close(client)
                    client = None
            state = _record(db, row, clock.now(), sent=sent, error=error, permanent=permanent)
            if state == "sent":
                report.sent += 1
            elif state == "failed":
                report.failed += 1
                log.warning("outbox message %s failed: %s", row["id"], error)
            else:
                report.retried += 1
    finally:
        if client is not None:
            _close(client, quit=True)
    return report


def _send_one(client: smtplib.SMTP, row: dict, sender: str, envelope_from: str,
              now: datetime) -> tuple[bool, str | None, bool, bool]:
    """(sent, error, permanent, connection broken) of one message on an open connection."""
    try:
        refused = client.send_message(build_message(row, sender, now), from_addr=envelope_from,
                                      to_addrs=row["recipients"])
    except Exception as exc:
        broken = isinstance(exc, (OSError, smtplib.SMTPServerDisconnected)) or getattr(exc, "smtp_code", 0) == 421
        return False, _describe(exc), _is_permanent(exc), broken
    # Some recipients may have been refused while the others accepted: sent, with the refusals on record.
    return True, "; ".join(f"{a}: {c} {_text(r)}" for a, (c, r) in refused.items()) or None, False, False


def _close(client: smtplib.SMTP, quit: bool = False) -> None:
    try:
        client.quit() if quit else client.close()
    except Exception:
        client.close()


# -------------------------------------------------------------- administration
@dataclass(frozen=True)
class MessageSummary:
    id: int
    kind: str
    state: str
    recipients: list
    subject: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    instance_id: int | None
    task_id: str | None
    message_id: str


@dataclass(frozen=True)
class AttemptSummary:
    at: datetime
    ok: bool
    error: str | None


def retry(db: Database, ids: Iterable[int], clock: Clock) -> int:
    """An administrator sends failed emails again: back to pending now, with a fresh count of attempts."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return 0
    with db.write() as session:
        store = Store(session)
        return sum(
            store.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = :now "
                          "WHERE id = :id AND state = 'failed'", id=outbox_id, now=clock.now()).rowcount
            for outbox_id in wanted
        )


def pending_count(db: Database) -> int:
    """Emails not yet delivered nor given up on (pending or being sent)."""
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.state.in_(("pending", "sending")))) or 0


def list_messages(db: Database, state: str | None = None, limit: int = 100) -> list[MessageSummary]:
    """Newest first, optionally one state: the mail log for the CLI and the administration pages."""
    if state is not None and state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OutboxMessage.state == state)
    with db.read() as session:
        return [
            MessageSummary(id=m.id, kind=m.kind, state=m.state, recipients=list(m.recipients), subject=m.subject,
                           attempts=m.attempts, last_error=m.last_error, next_attempt_at=m.next_attempt_at,
                           created_at=m.created_at, sent_at=m.sent_at, instance_id=m.instance_id, task_id=m.task_id,
                           message_id=m.message_id)
            for m in session.scalars(query)
        ]


def attempt_log(db: Database, outbox_id: int) -> list[AttemptSummary]:
    """Every delivery attempt of one email, oldest first."""
    with db.read() as session:
        return [AttemptSummary(at=a.at, ok=a.ok, error=a.error) for a in session.scalars(
            select(OutboxAttempt).where(OutboxAttempt.outbox_id == outbox_id).order_by(OutboxAttempt.id))]
