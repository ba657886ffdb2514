"""Điều Phối engine: definitions, runtime, assignment and persistence. Never imports Flask."""

__version__ = "0.1.0"
