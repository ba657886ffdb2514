"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, collecting what it receives.

Switches: `rcpt_reply` / `data_reply` make the server answer RCPT TO / DATA with a chosen
reply ("550 ...", "451 ..."), `refuse[address]` refuses one mailbox only; `stop()` takes it
down (connections refused) and `start()` brings it back on the same port. `tls="starttls"`
requires STARTTLS then AUTH LOGIN, `tls="implicit"` speaks TLS from the first byte (smtps)
and requires AUTH; both use a self-signed certificate made with the openssl command line.
"""

from __future__ import annotations

import email
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate for `host` (EC P-256: generated in milliseconds)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True,
    )
    return cert, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, server: "SmtpServer"):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server.rcpt_reply or self.server.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.server.data_reply:
            return self.server.data_reply
        raw = envelope.original_content or envelope.content
        with self.server.lock:
            self.server.received.append(Received(
                mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                message=email.message_from_bytes(raw, policy=policy.default), raw=raw,
            ))
        return "250 2.0.0 Đã nhận / queued"


class SmtpServer:
    def __init__(self, *, tls: str | None = None, certificate: tuple[Path, Path] | None = None,
                 username: str = "chuyenvien@sokhcn.gov.vn", password: str = "p@ss:w/rd%#?&"):
        if tls not in (None, "starttls", "implicit"):
            raise ValueError(tls)
        if tls and certificate is None:
            raise ValueError("TLS needs a certificate")
        self.host, self.port = "127.0.0.1", free_port()
        self.tls, self.certificate = tls, certificate
        self.username, self.password = username, password
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.refuse: dict[str, str] = {}  # one mailbox -> its RCPT reply
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    # ------------------------------------------------------------ control
    def start(self) -> "SmtpServer":
        kwargs: dict = {}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, self.certificate))
            kwargs.update(auth_required=True, authenticator=self._authenticate)
            if self.tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True, auth_exclude_mechanism=["PLAIN"])
            else:  # the whole connection is TLS, so AUTH needs no STARTTLS first
                kwargs.update(ssl_context=context, auth_require_tls=False)
        # A new controller each time: a stopped one has closed its event loop.
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      server_hostname="smtp.test", ready_timeout=5, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if (login, password) == (self.username, self.password):
                self.logins.append((mechanism, login))
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # ------------------------------------------------------------ helpers
    def url(self, **query: str) -> str:
        """The DIEUPHOI_SMTP_URL that reaches this server (credentials percent-encoded)."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@" if self.tls else ""
        if self.tls == "starttls":
            query = {"starttls": "1", **query}
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{scheme}://{auth}{self.host}:{self.port}" + (f"?{qs}" if qs else "")

    @property
    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received]
