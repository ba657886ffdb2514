"""JSON Schema forms: which input each field gets, and how the posted form becomes the engine's data."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from webui.views import schema_form

pytest_plugins = ("tests.webui.views_fixtures",)

SCHEMA = {
    "type": "object",
    "required": ["ngay", "loai"],
    "properties": {
        "ten": {"type": "string", "title": "Tên", "maxLength": 100},
        "mo_ta": {"type": "string", "title": "Mô tả", "maxLength": 4000},
        "ngay": {"type": "string", "format": "date", "title": "Ngày ký"},
        "so_luong": {"type": "integer", "title": "Số lượng"},
        "so_tien": {"type": "integer", "title": "Số tiền (đồng)"},
        "ty_le": {"type": "number", "title": "Tỷ lệ"},
        "dong_y": {"type": "boolean", "title": "Đồng ý"},
        "loai": {"type": "string", "enum": ["a", "b"], "enumNames": ["Loại A", "Loại B"], "title": "Loại"},
        "muc": {"type": "integer", "enum": [1, 2], "title": "Mức"},
        "don_vi": {"type": "array", "items": {"type": "string"}, "title": "Đơn vị"},
        "chon": {"type": "array", "items": {"enum": ["x", "y"]}, "title": "Chọn"},
        "nguoi_lien_he": {"type": "object", "title": "Người liên hệ",
                          "properties": {"email": {"type": "string", "format": "email"}}},
        "khoan_chi": {"type": "array", "title": "Khoản chi", "items": {"type": "object", "properties": {
            "noi_dung": {"type": "string"}, "so_tien": {"type": "integer"}}}},
    },
}


@pytest.fixture
def ctx(web):
    with web.test_request_context("/"):
        yield


def _kinds(fields):
    return {f.key: f.kind for f in fields}


def test_each_field_gets_its_input(ctx):
    fields = schema_form.bind(SCHEMA, {})
    assert _kinds(fields) == {
        "ten": "text", "mo_ta": "textarea", "ngay": "date", "so_luong": "integer", "so_tien": "money",
        "ty_le": "number", "dong_y": "checkbox", "loai": "select", "muc": "select", "don_vi": "lines",
        "chon": "multi", "nguoi_lien_he": "group", "khoan_chi": "rows"}
    loai = next(f for f in fields if f.key == "loai")
    assert loai.options == [("a", "Loại A"), ("b", "Loại B")] and loai.required
    group = next(f for f in fields if f.key == "nguoi_lien_he")
    assert group.children[0].path == "nguoi_lien_he/email" and group.children[0].kind == "email"


def test_values_are_shown_the_vietnamese_way(ctx):
    fields = schema_form.bind(SCHEMA, {"ngay": "2026-11-28", "so_tien": 1500000, "dong_y": True,
                                       "don_vi": ["SO_YT", "SO_TC"], "khoan_chi": [{"noi_dung": "A", "so_tien": 5}]})
    by_key = {f.key: f for f in fields}
    assert by_key["ngay"].value == "28/11/2026"
    assert by_key["so_tien"].value == "1.500.000"
    assert by_key["dong_y"].value is True
    assert by_key["don_vi"].value == "SO_YT\nSO_TC"
    assert [f.path for f in by_key["khoan_chi"].rows[0]] == ["khoan_chi/0/noi_dung", "khoan_chi/0/so_tien"]


def test_posted_form_becomes_typed_data(ctx):
    form = MultiDict([("ten", " Đề án "), ("mo_ta", ""), ("ngay", "28/11/2026"), ("so_luong", "12"),
                      ("so_tien", "1.500.000 đ"), ("ty_le", "0,5"), ("dong_y", "1"), ("loai", "b"), ("muc", "2"),
                      ("don_vi", "SO_YT\r\n\r\nSO_TC "), ("chon", "x"), ("chon", "y"),
                      ("nguoi_lien_he/email", "a@b.vn"),
                      ("khoan_chi/0/noi_dung", "A"), ("khoan_chi/0/so_tien", "5"),
                      ("khoan_chi/3/noi_dung", ""), ("khoan_chi/3/so_tien", ""),
                      ("khoan_chi/7/noi_dung", "B"), ("khoan_chi/7/so_tien", "6")])
    parsed = schema_form.parse(SCHEMA, form)
    assert parsed.errors == {}
    assert parsed.data == {
        "ten": "Đề án", "ngay": "2026-11-28", "so_luong": 12, "so_tien": 1500000, "ty_le": 0.5, "dong_y": True,
        "loai": "b", "muc": 2, "don_vi": ["SO_YT", "SO_TC"], "chon": ["x", "y"],
        "nguoi_lien_he": {"email": "a@b.vn"},
        "khoan_chi": [{"noi_dung": "A", "so_tien": 5}, {"noi_dung": "B", "so_tien": 6}]}


def test_unreadable_values_get_their_own_messages(ctx):
    parsed = schema_form.parse(SCHEMA, MultiDict([("ngay", "30/02/2026"), ("so_tien", "nhiều"),
                                                  ("khoan_chi/0/noi_dung", "A"), ("khoan_chi/0/so_tien", "x")]))
    assert set(parsed.errors) == {"ngay", "so_tien", "khoan_chi/0/so_tien"}
    assert "dd/mm/yyyy" in parsed.errors["ngay"]
    assert parsed.raw["so_tien"] == "nhiều"
    assert parsed.data["dong_y"] is False  # an unticked box is an explicit 'no'


def test_messages_without_an_input_are_listed_above_the_form(ctx):
    fields = schema_form.bind(SCHEMA, {})
    assert schema_form.unplaced_errors(fields, {"ten": "x", "/": "chung", "la": "y"}) == {"/": "chung", "la": "y"}
