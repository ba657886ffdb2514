"""Form data checked against its JSON Schema, with a message per field in Vietnamese then English."""

from __future__ import annotations

import jsonschema

from engine.errors import InvalidInput


def _number(value) -> str:
    """Vietnamese thousands separator: 1.500.000."""
    return f"{value:,}".replace(",", ".") if isinstance(value, (int, float)) else str(value)


_MESSAGES = {
    "required": lambda v: ("Trường này là bắt buộc.", "This field is required."),
    "type": lambda v: (f"Sai kiểu dữ liệu (cần {_type_vi(v)}).", f"Wrong type (expected {v})."),
    "minLength": lambda v: (f"Cần ít nhất {v} ký tự.", f"At least {v} characters."),
    "maxLength": lambda v: (f"Tối đa {v} ký tự.", f"At most {v} characters."),
    "minimum": lambda v: (f"Giá trị phải từ {_number(v)} trở lên.", f"Must be at least {v}."),
    "maximum": lambda v: (f"Giá trị không được vượt quá {_number(v)}.", f"Must be at most {v}."),
    "exclusiveMinimum": lambda v: (f"Giá trị phải lớn hơn {_number(v)}.", f"Must be greater than {v}."),
    "exclusiveMaximum": lambda v: (f"Giá trị phải nhỏ hơn {_number(v)}.", f"Must be less than {v}."),
    "enum": lambda v: ("Giá trị không nằm trong danh sách cho phép.", "Value is not one of the allowed options."),
    "const": lambda v: ("Giá trị không đúng.", "Value is not the expected one."),
    "pattern": lambda v: ("Giá trị không đúng định dạng.", "Value does not match the required format."),
    "format": lambda v: (f"Không đúng định dạng {v}.", f"Not a valid {v}."),
    "minItems": lambda v: (f"Cần ít nhất {v} mục.", f"At least {v} items."),
    "maxItems": lambda v: (f"Tối đa {v} mục.", f"At most {v} items."),
    "additionalProperties": lambda v: ("Trường không được phép.", "Unexpected field."),
    "maxProperties": lambda v: (f"Tối đa {v} trường.", f"At most {v} fields."),
    "oneOf": lambda v: ("Cần đúng một trong các trường thay thế.", "Exactly one of the alternatives is required."),
}


def _message(error: jsonschema.ValidationError) -> str:
    make = _MESSAGES.get(error.validator)
    vi, en = make(error.validator_value) if make else ("Giá trị không hợp lệ.", "Invalid value.")
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, str):  # a model may word its own message, e.g. for a tax-code pattern
        vi = custom
    return f"{vi} / {en}"


def _type_vi(value) -> str:
    names = {"string": "chuỗi", "integer": "số nguyên", "number": "số", "boolean": "đúng/sai",
             "array": "danh sách", "object": "đối tượng", "null": "rỗng"}
    if isinstance(value, list):
        return " hoặc ".join(names.get(v, v) for v in value)
    return names.get(value, str(value))


def message_for_type(expected: str) -> str:
    return f"Sai kiểu dữ liệu (cần {_type_vi(expected)}). / Wrong type (expected {expected})."


def field_errors(schema: dict, value, root: str = "/", format_checker=None) -> dict[str, str]:
    """{field path: message} for every violation, one message per field (paths like `items/0/so_tien`)."""
    details: dict[str, str] = {}
    validator = jsonschema.Draft202012Validator(schema, format_checker=format_checker)
    for error in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            details.setdefault("/".join([*path, missing]) or root, _message(error))
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for extra in sorted(k for k in error.instance if k not in allowed):
                details.setdefault("/".join([*path, extra]), _message(error))
        elif error.validator == "oneOf" and not path:
            names = [r for option in error.validator_value for r in option.get("required", [])]
            details.setdefault(" | ".join(names) or root, _message(error))
        else:
            details.setdefault("/".join(path) or root, _message(error))
    return details


def validate(schema: dict | None, data: dict) -> dict:
    """Return the data if valid; otherwise raise InvalidInput with {field: message}."""
    if not isinstance(data, dict):
        raise InvalidInput("Dữ liệu biểu mẫu phải là một đối tượng.", "Form data must be an object.")
    if not schema:
        return data
    details = field_errors(schema, data, format_checker=jsonschema.FormatChecker())
    if details:
        raise InvalidInput(
            "Biểu mẫu có trường chưa hợp lệ, vui lòng kiểm tra lại.",
            "Some fields are invalid, please check them.",
            details,
        )
    return data


_CAMUNDA_TYPES = {"string": "string", "long": "integer", "boolean": "boolean", "date": "string", "enum": "string"}


def camunda_form_schema(form) -> dict:
    """Turn a Camunda `formData` definition into the JSON Schema our forms use."""
    properties, required = {}, []
    for f in form.fields:
        prop: dict = {"type": _CAMUNDA_TYPES.get(f.type, "string"), "title": f.label or f.id}
        if f.type == "date":
            prop["format"] = "date"
        options = getattr(f, "options", None) or []
        if options:
            prop["enum"] = [o.id for o in options]
        for v in getattr(f, "validation", None) or []:
            if v.name == "required":
                required.append(f.id)
            elif v.name in ("minlength", "maxlength") and str(v.config).isdigit():
                prop["minLength" if v.name == "minlength" else "maxLength"] = int(v.config)
        properties[f.id] = prop
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema
