"""A task's JSON Schema as an HTML form, and the posted form back as the data the engine validates.

Field names in the page are the same paths the engine uses for its messages
(`so_tien`, `cac_khoan_chi/0/so_tien`), so each message lands next to its field. Only
what a browser cannot carry is checked here (a date or an amount that does not parse);
everything else is the engine's validation (`engine.forms`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask_babel import gettext as _

from webui.views.formats import local_date, number, parse_date, parse_money

TEXTAREA_FROM = 200  # strings allowed longer than this get a textarea
MAX_ROWS = 200
ROW_PLACEHOLDER = "__INDEX__"
_MONEY_WORDS = re.compile(r"(tien|kinh_phi|du_toan|gia_tri|phan_bo)", re.I)


@dataclass
class BoundField:
    path: str
    key: str
    label: str
    kind: str  # text textarea email integer money number date select checkbox multi lines rows group
    required: bool = False
    help: str = ""
    value: object = ""  # what the input shows (formatted)
    error: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    children: list["BoundField"] = field(default_factory=list)  # a group's fields
    rows: list[list["BoundField"]] = field(default_factory=list)  # repeating rows
    template: list["BoundField"] = field(default_factory=list)  # one empty row, index = ROW_PLACEHOLDER
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None


def _type(schema: dict) -> str | None:
    value = schema.get("type")
    if isinstance(value, list):
        value = next((v for v in value if v != "null"), None)
    return value


def _is_money(key: str, schema: dict) -> bool:
    label = str(schema.get("title", "")).lower()
    return bool(schema.get("x-money")) or "đồng" in label or "tiền" in label or "kinh phí" in label \
        or bool(_MONEY_WORDS.search(key))


def kind_of(key: str, schema: dict) -> str:
    kind = _type(schema)
    if "enum" in schema:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind == "integer":
        return "money" if _is_money(key, schema) else "integer"
    if kind == "number":
        return "number"
    if kind == "object":
        return "group"
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        if _type(items) == "object":
            return "rows"
        return "multi" if "enum" in items else "lines"
    if schema.get("format") == "date":
        return "date"
    if schema.get("format") == "email":
        return "email"
    if (schema.get("maxLength") or 0) > TEXTAREA_FROM:
        return "textarea"
    return "text"


def _options(schema: dict) -> list[tuple[str, str]]:
    values = schema.get("enum") or []
    names = schema.get("enumNames") or schema.get("x-enumNames") or []
    return [(str(v), str(names[i]) if i < len(names) else str(v)) for i, v in enumerate(values)]


def _join(prefix: str, key) -> str:
    return f"{prefix}/{key}" if prefix else str(key)


# ------------------------------------------------------------------ rendering
def bind(schema: dict | None, data: dict | None, errors: dict | None = None, raw: dict | None = None,
         extra_rows: dict | None = None) -> list[BoundField]:
    """The fields of an object schema with their current values and messages."""
    if not schema or _type(schema) not in ("object", None):
        return []
    return _bind_object(schema, data or {}, "", errors or {}, raw or {}, extra_rows or {})


def _bind_object(schema: dict, data: dict, prefix: str, errors: dict, raw: dict, extra_rows: dict) -> list[BoundField]:
    required = set(schema.get("required") or [])
    out = []
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or prop.get("readOnly") or prop.get("x-hidden"):
            continue
        path = _join(prefix, key)
        value = data.get(key) if isinstance(data, dict) else None
        out.append(_bind_one(key, prop, value, path, key in required, errors, raw, extra_rows))
    return out


def _bind_one(key: str, prop: dict, value, path: str, required: bool, errors: dict, raw: dict,
              extra_rows: dict) -> BoundField:
    kind = kind_of(key, prop)
    f = BoundField(path=path, key=key, label=str(prop.get("title") or key), kind=kind, required=required,
                   help=str(prop.get("description") or ""), error=_error_at(errors, path),
                   min_length=prop.get("minLength"), max_length=prop.get("maxLength"),
                   minimum=prop.get("minimum"), maximum=prop.get("maximum"))
    if kind in ("select", "multi"):
        f.options = _options(prop if kind == "select" else prop.get("items", {}))
    if kind == "group":
        f.children = _bind_object(prop, value if isinstance(value, dict) else {}, path, errors, raw, extra_rows)
        return f
    if kind == "rows":
        items = prop.get("items") or {}
        values = value if isinstance(value, list) else []
        count = len(values) + extra_rows.get(path, 0)
        if count == 0 and (prop.get("minItems") or required):
            count = 1
        for i in range(min(count, MAX_ROWS)):
            item = values[i] if i < len(values) and isinstance(values[i], dict) else {}
            f.rows.append(_bind_object(items, item, _join(path, i), errors, raw, extra_rows))
        f.template = _bind_object(items, {}, _join(path, ROW_PLACEHOLDER), {}, {}, {})
        return f
    if path in raw:
        f.value = raw[path]
    elif kind == "checkbox":
        f.value = value is True
    elif kind == "multi":
        f.value = [str(v) for v in value] if isinstance(value, list) else []
    elif kind == "lines":
        f.value = "\n".join(str(v) for v in value) if isinstance(value, list) else ""
    elif kind == "money":
        f.value = number(value) if isinstance(value, int) and not isinstance(value, bool) else (value or "")
    elif kind == "date":
        f.value = local_date(value) if value else ""
    else:
        f.value = "" if value is None else str(value)
    return f


def _error_at(errors: dict, path: str) -> str:
    return errors.get(path, "")


def field_paths(fields: list[BoundField]) -> set[str]:
    """The path of every input the form shows, nested objects and line items included."""
    paths: set[str] = set()

    def walk(items):
        for f in items:
            paths.add(f.path)
            walk(f.children)
            for row in f.rows:
                walk(row)

    walk(fields)
    return paths


def unplaced_errors(fields: list[BoundField], errors: dict) -> dict:
    """Messages whose path matches no input (e.g. '/' or an unknown key), to show above the form."""
    placed = field_paths(fields)
    return {k: v for k, v in errors.items() if k not in placed}


# ------------------------------------------------------------------ parsing
@dataclass
class Parsed:
    data: dict
    errors: dict  # path -> message, for values the browser sent that cannot be read
    raw: dict  # path -> what was typed, to show it again next to its message


def parse(schema: dict | None, form) -> Parsed:
    """The posted form as data for the engine; empty inputs are left out so 'required' can speak."""
    result = Parsed({}, {}, {})
    if schema and _type(schema) in ("object", None):
        result.data = _parse_object(schema, form, "", "", result)
    return result


def _parse_object(schema: dict, form, read: str, write: str, out: Parsed) -> dict:
    data = {}
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or prop.get("readOnly") or prop.get("x-hidden"):
            continue
        value = _parse_one(key, prop, form, _join(read, key), _join(write, key), out)
        if value is not None:
            data[key] = value
    return data


def _parse_one(key: str, prop: dict, form, read: str, write: str, out: Parsed):
    kind = kind_of(key, prop)
    if kind == "group":
        value = _parse_object(prop, form, read, write, out)
        return value or None
    if kind == "rows":
        return _parse_rows(prop, form, read, write, out)
    if kind == "checkbox":
        return form.get(read) in ("1", "on", "true", "yes")
    if kind == "multi":
        chosen = form.getlist(read)
        allowed = {str(v): v for v in (prop.get("items") or {}).get("enum", [])}
        return [allowed.get(v, v) for v in chosen] or None
    text = (form.get(read) or "").strip()
    if kind == "lines":
        items = [line.strip() for line in text.splitlines() if line.strip()]
        return items or None
    if not text:
        return None
    if kind == "select":
        allowed = {str(v): v for v in prop.get("enum", [])}
        return allowed.get(text, text)
    if kind in ("money", "integer"):
        value = parse_money(text)
        if value is None:
            out.errors[write] = _("Vui lòng nhập một số nguyên, ví dụ 1.500.000.")
            out.raw[write] = text
            return text
        return value
    if kind == "number":
        try:
            return float(text.replace(" ", "").replace(",", "."))
        except ValueError:
            out.errors[write] = _("Vui lòng nhập một số.")
            out.raw[write] = text
            return text
    if kind == "date":
        value = parse_date(text)
        if value is None:
            out.errors[write] = _("Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy.")
            out.raw[write] = text
            return text
        return value
    return text


def _parse_rows(prop: dict, form, read: str, write: str, out: Parsed) -> list | None:
    items = prop.get("items") or {}
    pattern = re.compile(re.escape(read) + r"/(\d{1,4})/")
    indexes = sorted({int(m.group(1)) for k in form.keys() if (m := pattern.match(k))})[:MAX_ROWS]
    rows = []
    for original in indexes:
        prefix = _join(read, original)
        if not any((form.get(k) or "").strip() for k in form.keys() if k.startswith(prefix + "/")):
            continue  # an empty row is dropped, as if it had been removed
        rows.append(_parse_object(items, form, prefix, _join(write, len(rows)), out))
    return rows or None


def added_rows(form) -> dict:
    """The 'Thêm dòng' button without JavaScript: {rows path: 1} to show one more empty row."""
    action = form.get("_add_row")
    return {action: 1} if action else {}
