"""Who is calling: a Bearer token or the web session (Flask-Login), and the token routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, request
from flask_login import LoginManager, UserMixin, current_user
from sqlalchemy import select

from engine import queries, tokens
from engine.errors import Forbidden, InvalidInput, TooManyAttempts
from engine.models import ApiToken, Position, User
from webui import request_db
from webui.api import schemas as S
from webui.api.http import NEED_LOGIN, Unauthorized
from webui.api.spec import TOKEN_ID, Param, api_route

log = logging.getLogger(__name__)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def engine():
    return current_app.extensions["dieuphoi"]


@dataclass(frozen=True)
class Actor:
    """The authenticated caller; permissions are always checked against the user's current positions."""

    id: int
    username: str
    full_name: str
    is_admin: bool
    via: str  # "token" | "session"
    token_id: int | None = None


class SessionUser(UserMixin):
    """What Flask-Login keeps for a signed-in web user (the web UI reuses this loader)."""

    def __init__(self, user: User):
        self.id = user.id
        self.username = user.username
        self.full_name = user.full_name
        self.is_admin = user.is_admin
        self._active = user.active

    @property
    def is_active(self) -> bool:
        return self._active


def init_login(app) -> LoginManager:
    """Install a LoginManager unless the web UI already did; sessions store the user id."""
    manager = getattr(app, "login_manager", None)
    if manager is not None:
        return manager
    manager = LoginManager()
    manager.init_app(app)

    @manager.user_loader
    def load_user(user_id: str):
        if not user_id.isdigit():
            return None
        with request_db.read() as session:  # the view and the navigation bar read on the same connection
            user = session.get(User, int(user_id))
            return SessionUser(user) if user is not None and user.active else None

    return manager


def _actor(session, user_id: int, via: str, token_id: int | None = None) -> Actor | None:
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    return Actor(user.id, user.username, user.full_name, user.is_admin, via, token_id)


def authenticate() -> Actor:
    """The caller, or 401: a Bearer header is authoritative when present, else the session cookie."""
    eng = engine()
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized(*NEED_LOGIN, {"authorization": "Cần dạng 'Bearer <mã>'. / Expected 'Bearer <token>'."})
        with request_db.read() as session:
            owner = tokens.resolve(session, raw.strip(), eng.now())  # None for a disabled owner too
        if owner is None:
            raise Unauthorized(*tokens.TOKEN_REFUSED)
        actor = Actor(owner.user_id, owner.username, owner.full_name, owner.is_admin, "token", owner.token_id)
        if owner.needs_touch:
            _touch(owner.token_id)
        return actor
    if current_user.is_authenticated:
        with request_db.read() as session:
            actor = _actor(session, int(current_user.get_id()), "session")
        if actor is not None:
            _check_same_origin()
            return actor
    raise Unauthorized(*NEED_LOGIN)


def _touch(token_id: int) -> None:
    eng = engine()
    try:
        with eng.db.write() as session:
            tokens.touch(session, token_id, eng.now())
    except Exception:  # noqa: BLE001 - a usage timestamp must never fail the request itself
        log.warning("could not record the use of token %s", token_id, exc_info=True)


def _check_same_origin() -> None:
    """A cookie rides along on cross-site requests; a write must prove it comes from our own pages."""
    if request.method in SAFE_METHODS or request.headers.get("X-Requested-With"):
        return
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin:
        theirs, ours = urlsplit(origin), urlsplit(request.host_url)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return
    raise Forbidden("Yêu cầu ghi bằng phiên đăng nhập phải đến từ chính trang web này.",
                    "A write with the session cookie must come from this site (Origin or X-Requested-With).",
                    {"origin": origin or ""})


# ------------------------------------------------------------------ token routes
def token_dict(row: ApiToken, owners: dict, now) -> dict:
    live = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return {
        "id": row.id, "name": row.name, "prefix": row.prefix, "owner": owners.get(row.user_id),
        "created_at": row.created_at, "expires_at": row.expires_at, "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at, "active": live,
    }


@api_route("POST", "/auth/token", summary="Đổi tên đăng nhập và mật khẩu lấy mã truy cập / get a token",
           tag="auth", body=S.TOKEN_REQUEST, body_required=True, status=201, response="NewToken", auth=False,
           errors=(401, 429))
def create_token(call):
    """The token is shown once; only its hash is stored. An unknown user and a wrong password get
    the same 401. Failures count with the web sign-in's (same table, same lock): five wrong
    passwords lock the username for 15 minutes, here and on the sign-in page alike."""
    from webui.views.auth import lockout

    eng = engine()
    body = call.body
    guard, username, now = lockout(), body["username"], eng.now()
    until = guard.locked_until(username, now)
    if until is not None:
        local = until.astimezone(eng.tz).strftime("%H:%M %d/%m/%Y")
        raise TooManyAttempts(f"Tài khoản tạm khóa do nhập sai mật khẩu nhiều lần. Vui lòng thử lại sau {local}.",
                              f"Account locked after repeated wrong passwords. Try again after {local}.",
                              {"locked_until": until.isoformat()})
    try:
        with request_db.read() as session:  # argon2 is slow on purpose: not inside the write lock
            user_id = tokens.check_password(session, username, body["password"]).id
    except tokens.BadCredentials:
        guard.fail(username, now)
        raise
    guard.clear(username)
    with eng.db.write() as session:
        row, raw = tokens.issue(session, user_id, eng.now(), body.get("name", ""),
                                body.get("expires_in_days", tokens.DEFAULT_LIFETIME_DAYS))
        owners = queries.user_refs(session, [user_id])
        out = token_dict(row, owners, eng.now())
    out["token"] = raw
    return out


@api_route("GET", "/auth/tokens", summary="Danh sách mã truy cập / list tokens", tag="auth",
           params=(Param("owner", "query", {"type": "string", "minLength": 1, "maxLength": 64},
                         "Tên đăng nhập chủ sở hữu (quản trị) / owner's username (administrators)"),
                   Param("all", "query", {"type": "boolean"}, "Mọi mã của mọi người (quản trị) / everyone's")),
           response="TokenList", errors=(403,))
def list_tokens(call):
    """Your own tokens; an administrator may list another user's (owner) or everyone's (all=true).
    Secrets are never shown again, only a prefix."""
    eng = engine()
    owner, everyone = call.query.get("owner"), call.query.get("all", False)
    with request_db.read() as session:
        owner_id = call.actor.id
        if owner or everyone:
            if not call.actor.is_admin:
                raise Forbidden("Chỉ quản trị hệ thống được xem mã của người khác.",
                                "Only an administrator may list other users' tokens.")
            owner_id = None if everyone else queries.user_id_by_username(session, owner)
            if owner_id is None and not everyone:
                return {"items": []}
        rows = tokens.tokens_of(session, owner_id)
        owners = queries.user_refs(session, [r.user_id for r in rows])
        return {"items": [token_dict(r, owners, eng.now()) for r in rows]}


@api_route("DELETE", "/auth/tokens/{token_id}", summary="Thu hồi mã truy cập / revoke a token", tag="auth",
           params=(TOKEN_ID,), response="Token")
def revoke_token(call):
    """By its owner or an administrator; someone else's token id is 'not found'. Revoking twice is harmless."""
    eng = engine()
    with eng.db.write() as session:
        actor = session.get(User, call.actor.id)
        row = tokens.revoke(session, actor, call.path["token_id"], eng.now())
        owners = queries.user_refs(session, [row.user_id])
        return token_dict(row, owners, eng.now())


@api_route("GET", "/me", summary="Người đang gọi API / the caller", tag="auth", response="Me")
def me(call):
    """Who the API takes you for, with your positions: useful to check a token."""
    with request_db.read() as session:
        positions = session.execute(select(Position.org_code, Position.role).where(Position.user_id == call.actor.id)
                                    .order_by(Position.id)).all()
        orgs = queries.org_refs(session, [p.org_code for p in positions])
    return {
        "id": call.actor.id, "username": call.actor.username, "full_name": call.actor.full_name,
        "is_admin": call.actor.is_admin, "auth": call.actor.via,
        "positions": [{"organisation": orgs[p.org_code], "role": p.role} for p in positions if p.org_code in orgs],
    }


def resolve_user(session, user_id: int | None, username: str | None) -> int:
    """A reassignment target given by id or username; an unknown one is the caller's input error."""
    if user_id is not None:
        found = session.scalar(select(User.id).where(User.id == user_id, User.active.is_(True)))
        field, value = "user_id", user_id
    else:
        found = session.scalar(select(User.id).where(User.username == (username or "").strip().lower(),
                                                     User.active.is_(True)))
        field, value = "username", username
    if found is None:
        raise InvalidInput("Không tìm thấy người nhận.", "Unknown user.",
                           {field: f"Không có người dùng '{value}'. / No such user."})
    return found
