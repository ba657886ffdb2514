"""The process descriptor: titles, lane -> assignment rules, list fields. Validated on deploy."""

from __future__ import annotations

import unicodedata

import jsonschema

from engine.deadlines import TASK_DEADLINE_SCHEMA
from engine.errors import InvalidModel
from engine.models import Role

ROLE_VALUES = [r.value for r in Role]

_RULE = {
    "type": "object",
    "properties": {
        "org": {"type": "string", "minLength": 1},
        "role": {"enum": ROLE_VALUES},
        "user": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["org", "role"]}, {"required": ["user"]}],
}
_TEXT = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"vi": {"type": "string"}, "en": {"type": "string"}}, "required": ["vi"]},
    ]
}

DESCRIPTOR_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,100}$"},
        "title": _TEXT,
        "process_id": {"type": "string"},
        "collaboration_id": {"type": "string"},
        "lanes": {"type": "object", "additionalProperties": _RULE},
        "default_lane": _RULE,
        "list_fields": {"type": "object", "additionalProperties": _TEXT},
        "title_template": {"type": "string"},
        "start": {
            "type": "object",
            "properties": {
                "form": {"type": "string"},
                "roles": {"type": "array", "items": {"enum": ROLE_VALUES}},
                "orgs": {"type": "array", "items": {"type": "string"}},
                "owner": {"type": "string"},
                "data": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "tasks": {"type": "object", "additionalProperties": TASK_DEADLINE_SCHEMA},
        "notify_on_completion": {
            "type": "object",
            "properties": {
                "kinds": {"type": "array", "items": {"type": "string"}},
                "roles": {"type": "array", "items": {"enum": ROLE_VALUES}},
                "outcome_field": {"type": "string"},
            },
            "additionalProperties": False,
        },
    },
    "required": ["key"],
    "additionalProperties": True,
}

# A task in no lane goes to whoever started the instance (spiff-arena does the same).
INITIATOR_RULE = {"user": "$initiator"}


def validate_descriptor(descriptor: dict) -> None:
    errors = sorted(jsonschema.Draft202012Validator(DESCRIPTOR_SCHEMA).iter_errors(descriptor), key=str)
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(gốc)"
        raise InvalidModel(
            f"Tệp mô tả quy trình không hợp lệ tại {where}: {err.message}",
            f"Invalid process descriptor at {where}: {err.message}",
            {"descriptor": where},
        )


def text(value, lang: str = "vi") -> str:
    if isinstance(value, dict):
        return value.get(lang) or value.get("vi") or ""
    return value or ""


def fold(name: str) -> str:
    """Case- and diacritics-insensitive form, so 'Lãnh đạo' matches 'lanh dao'."""
    name = name.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", name)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


_ROLE_ALIASES = {
    Role.STAFF.value: ["staff", "chuyen vien", "nhan vien", "clerk", "initiator staff"],
    Role.SUPERVISOR.value: ["supervisor", "lanh dao", "lanh dao don vi", "truong phong", "manager", "approver"],
    Role.LEADER.value: ["leader", "lanh dao ubnd tinh", "lanh dao tinh", "director"],
}
_ROLE_BY_ALIAS = {alias: role for role, aliases in _ROLE_ALIASES.items() for alias in aliases}
_INITIATOR_ALIASES = {"process initiator", "initiator", "nguoi khoi tao", "nguoi de nghi"}


def lane_rule_from_name(lane: str, organisations: list[tuple[str, str, str]]) -> dict | None:
    """Map a lane drawn in any modeler to a rule by its name alone.

    `organisations` is [(code, name_vi, name_en)]. Accepted: a role ("Lãnh đạo"), an
    organisation or group by code or name ("Sở Tài chính", "Finance Team"), or both
    separated by '/', '-' or ':' ("SO_TC / lãnh đạo").
    """
    folded = fold(lane)
    if folded in _INITIATOR_ALIASES:
        return dict(INITIATOR_RULE)
    if folded in _ROLE_BY_ALIAS:
        return {"org": "$owner", "role": _ROLE_BY_ALIAS[folded]}
    by_name = {}
    for code, name_vi, name_en in organisations:
        for candidate in (code, name_vi, name_en):
            if candidate:
                by_name[fold(candidate)] = code
    if folded in by_name:
        return {"org": by_name[folded], "role": Role.STAFF.value}
    for sep in ("/", " - ", ":"):
        if sep in lane:
            left, right = (fold(p) for p in lane.rsplit(sep, 1))
            if left in by_name and right in _ROLE_BY_ALIAS:
                return {"org": by_name[left], "role": _ROLE_BY_ALIAS[right]}
    return None
