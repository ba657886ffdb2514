"""Engine errors: a stable code, an HTTP-like status, and a message in Vietnamese then English."""

from __future__ import annotations


class EngineError(Exception):
    code = "error"
    status = 400

    def __init__(self, message_vi: str, message_en: str = "", details: dict | None = None):
        super().__init__(f"{message_vi} / {message_en}" if message_en else message_vi)
        self.message_vi = message_vi
        self.message_en = message_en
        self.details = details or {}

    @property
    def message(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(EngineError):
    code, status = "invalid_input", 400


class Forbidden(EngineError):
    code, status = "forbidden", 403


class NotFound(EngineError):
    code, status = "not_found", 404


class Conflict(EngineError):
    code, status = "conflict", 409


class TooLarge(EngineError):
    code, status = "too_large", 413


class TooManyAttempts(EngineError):
    code, status = "too_many_attempts", 429


class InvalidModel(EngineError):
    code, status = "invalid_model", 422
