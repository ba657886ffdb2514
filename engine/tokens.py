"""Personal API tokens: issued for a password, stored only as a SHA-256 hash, revocable.

A token carries nothing but its owner's identity: every permission is checked against
the owner's current positions, so a token never grants more than its owner has now,
and a disabled account's tokens stop working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import directory
from engine.errors import EngineError, Forbidden, NotFound
from engine.models import ApiToken, AuditEvent, User

TOKEN_PREFIX = "dp_"
TOKEN_BYTES = 32
DISPLAY_CHARS = 10  # "dp_" and the first 7 characters: enough to tell tokens apart in a list
DEFAULT_LIFETIME_DAYS = 90
MAX_LIFETIME_DAYS = 3650
MAX_NAME = 100
# Recording every use would turn each API read into a write; a coarse timestamp is enough.
TOUCH_EVERY = timedelta(minutes=5)


class BadCredentials(EngineError):
    code, status = "unauthorized", 401


CREDENTIALS_REFUSED = ("Tên đăng nhập hoặc mật khẩu không đúng.", "Wrong username or password.")
TOKEN_REFUSED = ("Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi.",
                 "The access token is invalid, expired or revoked.")

_dummy_hash: str | None = None


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def check_password(session: Session, username: str, password: str) -> User:
    """The active user with these credentials; the same refusal whatever was wrong."""
    global _dummy_hash
    user = directory.user_by_username(session, username) if len(username or "") <= 64 else None
    if user is None or not user.password_hash:
        # Spend the same argon2 time as a real check, so timing does not tell which usernames exist.
        _dummy_hash = _dummy_hash or directory.hash_password(secrets.token_urlsafe(16))
        directory.verify_password(User(password_hash=_dummy_hash), password or "")
        raise BadCredentials(*CREDENTIALS_REFUSED)
    if not directory.verify_password(user, password or "") or not user.active:
        raise BadCredentials(*CREDENTIALS_REFUSED)
    return user


def issue(session: Session, user_id: int, now: datetime, name: str = "",
          lifetime_days: int | None = DEFAULT_LIFETIME_DAYS) -> tuple[ApiToken, str]:
    """Create a token for the user; returns the row and the only copy of the secret."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(
        user_id=user_id, name=(name or "").strip()[:MAX_NAME], token_hash=hash_token(raw), prefix=raw[:DISPLAY_CHARS],
        created_at=now, expires_at=now + timedelta(days=lifetime_days) if lifetime_days else None,
    )
    session.add(row)
    session.flush()
    session.add(AuditEvent(action="api_token_created", actor_id=user_id, at=now,
                           details={"token": row.id, "prefix": row.prefix, "name": row.name}))
    return row, raw


@dataclass(frozen=True)
class TokenOwner:
    token_id: int
    user_id: int
    needs_touch: bool
    # The owner's account, read in the same statement: authenticating a request is one query.
    username: str = ""
    full_name: str = ""
    is_admin: bool = False


def resolve(session: Session, raw: str, now: datetime) -> TokenOwner | None:
    """The owner of a live token, or None (unknown, revoked, expired, or owner disabled)."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    row = session.execute(
        select(ApiToken.id, ApiToken.user_id, ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
               User.active, User.username, User.full_name, User.is_admin)
        .join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == hash_token(raw))
    ).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    stale = row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY
    return TokenOwner(row.id, row.user_id, stale, row.username, row.full_name, row.is_admin)


def touch(session: Session, token_id: int, now: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def tokens_of(session: Session, owner_id: int | None) -> list[ApiToken]:
    """Tokens newest first; `owner_id=None` means everyone's (administrators only: the caller checks)."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if owner_id is not None:
        query = query.where(ApiToken.user_id == owner_id)
    return list(session.scalars(query))


def revoke(session: Session, actor: User, token_id: int, now: datetime) -> ApiToken:
    """Revoke a token of the actor's own, or anyone's for an administrator; repeating is harmless."""
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != actor.id and not actor.is_admin):
        # Someone else's token is "not found": ids must not reveal whose tokens exist.
        raise NotFound("Không tìm thấy mã truy cập.", "Token not found.", {"token": token_id})
    if not actor.active:
        raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")
    if row.revoked_at is None:
        row.revoked_at = now
        row.revoked_by = actor.id
        session.add(AuditEvent(action="api_token_revoked", actor_id=actor.id, at=now,
                               details={"token": row.id, "prefix": row.prefix, "owner": row.user_id}))
    return row
