"""Sign in and out, change one's password; repeated wrong passwords lock the username for a while."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine import directory
from engine.errors import InvalidInput
from engine.models import SignInFailure, User, UTCDateTime
from webui.api.auth import SessionUser
from webui.views import engine, formats, safe_next

bp = Blueprint("auth", __name__)

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)


class Lockout:
    """Failed sign-ins per username, counted in the database (`sign_in_failures`), so every web
    process shares them and a restart forgets nothing; a cookie could simply be dropped.

    Five failures within 15 minutes of the first lock the username for 15 minutes from the last
    failure; a successful sign-in clears the count. A failure is one upsert (atomic on SQLite and
    PostgreSQL alike, so concurrent failures all count), and each one also deletes the rows whose
    window and lock are both over, so invented usernames cannot grow the table without bound.
    Times come from the engine's clock.
    """

    def __init__(self, engine, limit: int = MAX_FAILURES, window: timedelta = LOCK_FOR):
        self.engine = engine
        self.limit = limit
        self.window = window

    def locked_until(self, username: str, now: datetime) -> datetime | None:
        with self.engine.db.read() as s:
            until = s.scalar(select(SignInFailure.locked_until).where(SignInFailure.username == username))
        return until if until is not None and until > now else None

    def fail(self, username: str, now: datetime) -> None:
        table = SignInFailure.__table__
        c = table.c
        at = literal(now, UTCDateTime())
        fresh = c.first_failed_at > literal(now - self.window, UTCDateTime())  # the running window still counts
        with self.engine.db.write() as s:
            insert = (pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
            s.execute(insert.values(username=username, failures=1, first_failed_at=now, last_failed_at=now,
                                    locked_until=now + self.window if self.limit <= 1 else None)
                      .on_conflict_do_update(index_elements=[c.username], set_={
                          "failures": case((fresh, c.failures + 1), else_=1),
                          "first_failed_at": case((fresh, c.first_failed_at), else_=at),
                          "last_failed_at": at,
                          "locked_until": case((and_(fresh, c.failures + 1 >= self.limit),
                                                literal(now + self.window, UTCDateTime())),
                                               else_=literal(None, UTCDateTime())),
                      }))
            s.execute(delete(table).where(c.last_failed_at < now - self.window,
                                          or_(c.locked_until.is_(None), c.locked_until < now)))

    def clear(self, username: str) -> None:
        with self.engine.db.read() as s:  # most sign-ins have nothing to clear: no write lock for them
            if s.scalar(select(SignInFailure.username).where(SignInFailure.username == username)) is None:
                return
        with self.engine.db.write() as s:
            s.execute(delete(SignInFailure).where(SignInFailure.username == username))


def lockout() -> Lockout:
    from flask import current_app

    eng = current_app.extensions["dieuphoi"]
    found = current_app.extensions.get("dieuphoi.lockout")
    if found is None or found.engine is not eng:
        found = current_app.extensions["dieuphoi.lockout"] = Lockout(eng)
    return found


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
                directory.set_password_hash(s, user_id, new_hash, actor_id=user_id, at=eng.now())
            _start_session(user)
            flash(_("Đã đổi mật khẩu."), "success")
            return redirect(url_for("tasks.inbox"))
    return _account_page(errors), 400 if errors else 200


def _account_page(errors: dict[str, str]) -> str:
    with engine().db.read() as s:
        digest = s.scalar(select(User.daily_digest).where(User.id == int(current_user.get_id())))
    return render_template("auth/password.html", errors=errors, daily_digest=bool(digest),
                           digest_hour=engine().settings.digest_hour)


@bp.post("/preferences")
@login_required
def preferences():
    """The user's own choices: for now, whether the morning digest email comes (engine.digest)."""
    wanted = request.form.get("daily_digest") == "1"
    with engine().db.write() as s:
        s.execute(update(User).where(User.id == int(current_user.get_id())).values(daily_digest=wanted))
    flash(_("Sẽ gửi thư tổng hợp mỗi sáng ngày làm việc.") if wanted
          else _("Sẽ không gửi thư tổng hợp hằng ngày nữa."), "success")
    return redirect(url_for("auth.password"))
