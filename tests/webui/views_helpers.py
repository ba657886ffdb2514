"""Helpers for the web page tests: reading pages and the projections behind them."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from engine.models import HumanTask, TaskState

PASSWORD = "MatKhau@2026"
PROPOSAL = {
    "so_van_ban": "125/SNN-KH",
    "noi_dung_de_xuat": "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học",
    "ly_do": "Đáp ứng yêu cầu thực tiễn sản xuất dược liệu",
}


def open_tasks(engine, instance_id: int) -> list[HumanTask]:
    with engine.db.read() as session:
        return list(session.scalars(select(HumanTask).where(
            HumanTask.instance_id == instance_id, HumanTask.state == TaskState.OPEN.value
        ).order_by(HumanTask.created_at, HumanTask.id)))


def only_task(engine, instance_id: int, name: str | None = None) -> HumanTask:
    tasks = open_tasks(engine, instance_id)
    assert len(tasks) == 1, [t.task_name for t in tasks]
    if name is not None:
        assert tasks[0].task_name == name
    return tasks[0]


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, whitespace collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(script|style|template)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def csrf_token_of(response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)
