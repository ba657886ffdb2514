"""Sign in and out, change one's password; repeated wrong passwords lock the username for a while."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from engine import directory
from engine.errors import InvalidInput
from engine.models import User
from webui.api.auth import SessionUser
from webui.views import engine, formats, safe_next

bp = Blueprint("auth", __name__)

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)


class Lockout:
    """Failed sign-ins per username, kept IN THIS PROCESS's memory (not in the database, not in the cookie).

    A cookie can simply be dropped, so the count lives on the server. It is per process: with
    several web processes each keeps its own count (an attacker gets at most 5 tries per process
    per 15 minutes), and a restart forgets it. Five failures within 15 minutes lock the username
    for 15 minutes from the last failure; a successful sign-in clears the count.
    """

    def __init__(self, limit: int = MAX_FAILURES, window: timedelta = LOCK_FOR):
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: datetime) -> list[datetime]:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def locked_until(self, username: str, now: datetime) -> datetime | None:
        with self._lock:
            recent = self._recent(username, now)
            return recent[-1] + self.window if len(recent) >= self.limit else None

    def fail(self, username: str, now: datetime) -> None:
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a flood of invented usernames
                self._failures.clear()
            self._failures.setdefault(username, []).append(now)
            self._recent(username, now)

    def clear(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


def lockout() -> Lockout:
    from flask import current_app

    return current_app.extensions.setdefault("dieuphoi.lockout", Lockout())


def _start_session(user: User) -> None:
    """A new session at sign-in: nothing from before survives (but the chosen language)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    session["sid"] = secrets.token_urlsafe(24)  # rotates the cookie's content at every sign-in
    login_user(SessionUser(user), fresh=True)
    session.permanent = False


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next"), url_for("tasks.inbox")))
    eng = engine()
    error = None
    username = ""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip().lower()[:64]
        password = request.form.get("password") or ""
        now = eng.now()
        until = lockout().locked_until(username, now) if username else None
        if until is not None:
            error = _("Tài khoản tạm khóa do nhập sai mật khẩu nhiều lần. Vui lòng thử lại sau %(time)s.",
                      time=formats.local_datetime(until))
        elif not username or not password:
            error = _("Vui lòng nhập tên đăng nhập và mật khẩu.")
        else:
            with eng.db.read() as s:
                user = directory.user_by_username(s, username)
                ok = user is not None and user.active and directory.verify_password(user, password)
                if ok:
                    s.expunge(user)
            if ok:
                lockout().clear(username)
                _start_session(user)
                return redirect(safe_next(request.form.get("next") or request.args.get("next"),
                                          url_for("tasks.inbox")))
            lockout().fail(username, now)
            error = _("Tên đăng nhập hoặc mật khẩu không đúng.")
    status = 401 if error else 200
    return render_template("auth/login.html", error=error, username=username,
                           next=safe_next(request.args.get("next"), "")), status


@bp.post("/logout")
def logout():
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("Bạn đã đăng xuất."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    eng = engine()
    errors: dict[str, str] = {}
    if request.method == "POST":
        current = request.form.get("current_password") or ""
        new = request.form.get("new_password") or ""
        confirm = request.form.get("confirm_password") or ""
        if new != confirm:
            errors["confirm_password"] = _("Mật khẩu nhập lại không khớp.")
        user_id = int(current_user.get_id())
        with eng.db.read() as s:  # argon2 is slow on purpose: not inside the write lock
            user = s.get(User, user_id)
            if not directory.verify_password(user, current):
                errors["current_password"] = _("Mật khẩu hiện tại không đúng.")
            s.expunge(user)
        new_hash = None
        if not errors:
            try:
                new_hash = directory.hash_password(new)
            except InvalidInput as exc:
                errors["new_password"] = formats.engine_message(exc)
        if not errors:
            with eng.db.write() as s:
                s.get(User, user_id).password_hash = new_hash
            _start_session(user)
            flash(_("Đã đổi mật khẩu."), "success")
            return redirect(url_for("tasks.inbox"))
    return render_template("auth/password.html", errors=errors), 400 if errors else 200
