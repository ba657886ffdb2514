"""A plain status page for signed-in people (process versions, case and task counts) and the
health check that load balancers and monitors probe without signing in."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask_login import login_required
from sqlalchemy import func, select

from engine.models import Definition, HumanTask, Instance, TaskState
from webui import request_db

bp = Blueprint("status", __name__)


def _engine():
    return current_app.extensions["dieuphoi"]


@bp.get("/status")
@login_required
def index():
    with request_db.read() as session:
        definitions = session.execute(
            select(Definition.process_key, Definition.title_vi, func.max(Definition.version))
            .group_by(Definition.process_key, Definition.title_vi).order_by(Definition.process_key)
        ).all()
        instances = session.execute(select(Instance.status, func.count()).group_by(Instance.status)).all()
        open_tasks = session.scalar(select(func.count()).where(HumanTask.state == TaskState.OPEN.value))
    return render_template("status.html", definitions=definitions, instances=dict(instances), open_tasks=open_tasks)


@bp.get("/api/v1/health")
def health():
    engine = _engine()
    with engine.db.read() as session:
        session.execute(select(1))
    return jsonify(status="ok", database="sqlite" if engine.db.is_sqlite else "postgresql")
