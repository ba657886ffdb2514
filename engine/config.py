"""Settings read from DIEUPHOI_* environment variables (and an optional .env file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

DEFAULT_INSTANCE_DIR = Path.cwd() / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"DIEUPHOI_{name}")
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    smtp_url: str | None = None
    secret_key: str = "dev-secret-change-me"
    base_url: str = "http://127.0.0.1:5000"
    timezone: str = "Asia/Ho_Chi_Minh"
    sqlite_synchronous: str = "NORMAL"
    max_upload_bytes: int = 5 * 1024 * 1024
    script_cpu_seconds: float = 1.0
    instance_dir: Path = field(default=DEFAULT_INSTANCE_DIR)
    digest_hour: int | None = 7  # local hour of the daily digest on working days; None = no digest

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        load_dotenv(override=False)
        instance_dir = Path(_env("INSTANCE_DIR", str(DEFAULT_INSTANCE_DIR)))
        values = dict(
            database_url=_env("DATABASE_URL", f"sqlite:///{instance_dir / 'dieuphoi.sqlite3'}"),
            smtp_url=_env("SMTP_URL"),
            secret_key=_env("SECRET_KEY", "dev-secret-change-me"),
            base_url=_env("BASE_URL", "http://127.0.0.1:5000"),
            timezone=_env("TIMEZONE", "Asia/Ho_Chi_Minh"),
            sqlite_synchronous=(_env("SQLITE_SYNCHRONOUS", "NORMAL") or "NORMAL").upper(),
            max_upload_bytes=int(_env("MAX_UPLOAD_BYTES", str(5 * 1024 * 1024))),
            script_cpu_seconds=float(_env("SCRIPT_CPU_SECONDS", "1.0")),
            instance_dir=instance_dir,
            digest_hour=_digest_hour(_env("DIGEST_HOUR", "7")),
        )
        values.update(overrides)
        return cls(**values)


def _digest_hour(value: str) -> int | None:
    if value.strip().lower() in ("off", "none", "no", "false"):
        return None
    try:
        hour = int(value)
    except ValueError:
        hour = -1
    if not 0 <= hour <= 23:
        raise ValueError(f"DIEUPHOI_DIGEST_HOUR phải là giờ 0–23 hoặc 'off' / must be an hour 0-23 or 'off', "
                         f"not {value!r}")
    return hour
