"""Step instructions are filled from the step's own data, in Jinja's sandbox."""

from __future__ import annotations

from engine.queries import render_instructions


def test_placeholders_are_filled_from_the_steps_data():
    text = render_instructions("Đơn vị {{ don_vi }} nộp trước {{ han_nop }}.", {"don_vi": "SO_YT", "han_nop": "18/11"})
    assert text == "Đơn vị SO_YT nộp trước 18/11."


def test_a_missing_field_leaves_a_blank_not_an_error():
    assert render_instructions("Lý do: {{ ly_do_tra_lai }}", {}) == "Lý do: "


def test_templates_cannot_reach_python_internals():
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    assert "subclasses" in render_instructions(hostile, {})  # refused: shown as written, nothing evaluated
    assert render_instructions(None, {}) is None
