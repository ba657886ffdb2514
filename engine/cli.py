"""The `dieuphoi` command line: db, seed, deploy, serve, worker, signal, users, timers."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from engine import directory, schema
from engine.app import build
from engine.errors import EngineError
from engine.models import User


def _engine():
    return build()


def _fail(exc: EngineError) -> None:
    click.echo(f"Lỗi / Error: {exc.message}", err=True)
    for key, value in (exc.details or {}).items():
        click.echo(f"  - {key}: {value}", err=True)
    sys.exit(1)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Ghi log chi tiết / verbose logging")
def main(verbose: bool) -> None:
    """Điều Phối: quy trình công việc của kế hoạch khoa học và công nghệ tỉnh."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # every task state change and scheduler tick is noise at INFO
        for name in ("spiff", "apscheduler", "alembic.runtime.migration"):
            logging.getLogger(name).setLevel(logging.WARNING)


@main.group()
def db() -> None:
    """Cơ sở dữ liệu / database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Tạo hoặc nâng cấp lược đồ (Alembic) / create or migrate the schema."""
    engine = _engine()
    schema.upgrade(engine.db)
    click.echo(f"Lược đồ ở phiên bản {schema.current(engine.db)} / schema at revision {schema.current(engine.db)}")


@main.command()
@click.option("--demo", is_flag=True, help="Thêm người dùng và hồ sơ mẫu / add demo users and cases")
def seed(demo: bool) -> None:
    """Nạp danh mục đơn vị và các quy trình kèm theo / load organisations and bundled workflows."""
    from engine.seed import seed as run_seed

    try:
        report = run_seed(_engine(), demo=demo)
    except EngineError as exc:
        _fail(exc)
    for line in report:
        click.echo(line)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def deploy(paths: tuple[Path, ...]) -> None:
    """Triển khai mô hình BPMN (thư mục hoặc tệp) / deploy process models."""
    engine = _engine()
    for path in paths:
        try:
            result = engine.deploy_path(path)
        except EngineError as exc:
            _fail(exc)
        state = "mới / new" if result.created else "không đổi / unchanged"
        click.echo(f"{result.process_key} v{result.version} ({state})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Không chạy bộ hẹn giờ trong tiến trình này")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Luồng xử lý yêu cầu mỗi tiến trình / request threads per process")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Số tiến trình web (mỗi tiến trình dùng một lõi CPU) / web processes, one core each")
def serve(host: str, port: int, no_scheduler: bool, threads: int, processes: int) -> None:
    """Chạy giao diện web, API và bộ hẹn giờ / serve the web UI, API and scheduler."""
    if processes > 1:  # gunicorn's pre-fork arbiter; every worker builds its own engine after the fork
        from webui.server import run

        _check_port_free(host, port)
        click.echo(f"Điều Phối đang chạy tại http://{host}:{port}/ với {processes} tiến trình (Ctrl+C để dừng)")
        run(host, port, processes, threads, scheduler=not no_scheduler)
        return
    from waitress import serve as waitress_serve

    from engine.scheduler import start_background
    from webui import create_app

    engine = _engine()
    app = create_app(engine=engine)
    scheduler = None if no_scheduler else start_background(engine)
    click.echo(f"Điều Phối đang chạy tại http://{host}:{port}/ (Ctrl+C để dừng)")
    try:
        waitress_serve(app, host=host, port=port, threads=threads, ident="dieuphoi")
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def _check_port_free(host: str, port: int) -> None:
    """Each web process binds its own SO_REUSEPORT socket, which would quietly share a port with
    another `serve --processes` already on it: a plain bind first refuses a port in use."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.UsageError(f"Cổng {host}:{port} đang được dùng hoặc không mở được ({exc.strerror}). / "
                                   f"Port {host}:{port} is in use or cannot be opened.") from None


@main.command()
@click.option("--interval", default=1.0, show_default=True, type=float)
def worker(interval: float) -> None:
    """Chỉ chạy bộ hẹn giờ / run the timer scheduler only (several per machine on SQLite, any number on PostgreSQL)."""
    from engine.scheduler import run_blocking

    click.echo("Bộ hẹn giờ đang chạy / scheduler running")
    run_blocking(_engine(), interval)


@main.command()
@click.argument("name")
@click.option("--instance", "instance_id", type=int, help="Chỉ gửi tới hồ sơ này / only to this case")
@click.option("--data", default="{}", show_default=True, help="Dữ liệu kèm theo (đối tượng JSON) / payload")
def signal(name: str, instance_id: int | None, data: str) -> None:
    """Phát tín hiệu BPMN tới các hồ sơ đang chờ / broadcast a BPMN signal to the waiting cases."""
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise click.BadParameter("cần một đối tượng JSON, ví dụ '{\"dot\": 2}' / must be a JSON object",
                                 param_hint="--data")
    try:
        caught = _engine().send_signal(None, name, payload, instance_id)
    except EngineError as exc:
        _fail(exc)
    click.echo(f"Hồ sơ đã nhận tín hiệu / cases that caught it: {', '.join(map(str, caught))}")


@main.group()
def users() -> None:
    """Người dùng / users."""


@users.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True)
@click.option("--email", default="")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--position", "positions", multiple=True, help="ORG_CODE:role, e.g. SO_KHCN:staff")
@click.option("--admin", is_flag=True)
def users_create(username, full_name, email, password, positions, admin) -> None:
    engine = _engine()
    try:
        pairs = [tuple(p.split(":", 1)) for p in positions]
        if any(len(p) != 2 for p in pairs):
            raise click.BadParameter("--position cần dạng ORG_CODE:role")
        with engine.db.write() as session:
            user = directory.create_user(session, username, full_name, email=email, password=password,
                                         positions=pairs, is_admin=admin, at=engine.now())
            click.echo(f"Đã tạo {user.username} (id {user.id})")
    except EngineError as exc:
        _fail(exc)


@users.command("list")
def users_list() -> None:
    from sqlalchemy import select

    engine = _engine()
    with engine.db.read() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            positions = ", ".join(f"{p.org_code}:{p.role}" for p in user.positions)
            flag = " [admin]" if user.is_admin else ""
            click.echo(f"{user.username:28} {user.full_name:30} {positions}{flag}")


@main.group()
def orgs() -> None:
    """Đơn vị / organisations."""


@orgs.command("merge")
@click.argument("source")
@click.argument("target")
def orgs_merge(source: str, target: str) -> None:
    """Sáp nhập SOURCE vào TARGET: người, việc đang mở và hồ sơ chuyển sang / merge SOURCE into TARGET."""
    engine = _engine()
    try:
        with engine.db.write() as session:
            summary = directory.merge_organisation(session, source, target, actor_id=None, at=engine.now())
    except EngineError as exc:
        _fail(exc)
    click.echo(f"Đã sáp nhập {source} vào {target}: {summary['positions']} vị trí, "
               f"{summary['open_tasks']} việc đang mở, {summary['cases']} hồ sơ.")


@main.group()
def calendar() -> None:
    """Ngày nghỉ bù, ngày làm bù do Chính phủ công bố / announced days off and make-up working days."""


@calendar.command("list")
def calendar_list() -> None:
    from sqlalchemy import select

    from engine.models import CalendarDay

    engine = _engine()
    with engine.db.read() as session:
        for row in session.scalars(select(CalendarDay).order_by(CalendarDay.day)):
            label = "nghỉ / off" if row.kind == "off" else "làm bù / work"
            click.echo(f"{row.day.strftime('%d/%m/%Y')}  {label:14} {row.note}")


def _calendar_set(day: str, kind: str | None, note: str) -> None:
    from datetime import datetime as _dt

    try:
        parsed = _dt.strptime(day, "%d/%m/%Y").date() if "/" in day else _dt.strptime(day, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"Ngày không hợp lệ: {day} (dd/mm/yyyy) / invalid date") from None
    try:
        _engine().set_calendar_day(None, parsed, kind, note)
    except EngineError as exc:
        _fail(exc)
    click.echo(f"{parsed.strftime('%d/%m/%Y')}: {kind or 'đã xoá / cleared'}")


@calendar.command("off")
@click.argument("day")
@click.option("--note", default="")
def calendar_off(day: str, note: str) -> None:
    """Thêm ngày nghỉ / add a day off (dd/mm/yyyy)."""
    _calendar_set(day, "off", note)


@calendar.command("workday")
@click.argument("day")
@click.option("--note", default="")
def calendar_workday(day: str, note: str) -> None:
    """Thêm ngày làm bù / add a make-up working day (dd/mm/yyyy)."""
    _calendar_set(day, "work", note)


@calendar.command("clear")
@click.argument("day")
def calendar_clear(day: str) -> None:
    _calendar_set(day, None, "")


@main.group()
def timers() -> None:
    """Hẹn giờ / timers."""


@timers.command("fire-due")
def timers_fire_due() -> None:
    """Chạy ngay các hẹn giờ đã đến hạn / fire every due timer now."""
    fired = _engine().fire_due_timers(limit=10_000)
    click.echo(f"Đã chạy {fired} hẹn giờ / fired {fired} timer(s)")


@timers.command("list")
@click.option("--state", type=click.Choice(["pending", "claimed", "done", "cancelled", "failed"]), default=None)
@click.option("--limit", default=100, show_default=True)
def timers_list(state: str | None, limit: int) -> None:
    """Các hẹn giờ theo thời điểm đến hạn / timers by due time."""
    from sqlalchemy import select

    from engine.models import Timer

    engine = _engine()
    with engine.db.read() as session:
        query = select(Timer).order_by(Timer.due_at).limit(limit)
        query = query.where(Timer.state == state) if state else query.where(Timer.state.in_(("pending", "claimed",
                                                                                              "failed")))
        for t in session.scalars(query):
            local = t.due_at.astimezone(engine.tz).strftime("%d/%m/%Y %H:%M")
            error = f"  lỗi / error: {t.last_error[:80]}" if t.last_error else ""
            click.echo(f"#{t.id:<6} {t.state:9} {local}  {t.dedupe_key:48} lần/attempts {t.attempts}{error}")


@timers.command("retry")
@click.argument("ids", nargs=-1, type=int, required=True)
def timers_retry(ids: tuple[int, ...]) -> None:
    """Đưa hẹn giờ lỗi trở lại hàng đợi / put failed timers back in the queue."""
    from engine.store import TimerStore

    engine = _engine()
    with engine.db.write() as session:
        count = TimerStore(session).retry(list(ids), engine.now())
    click.echo(f"Đã đưa lại {count} hẹn giờ / requeued {count} timer(s)")


@main.group()
def outbox() -> None:
    """Thư điện tử chờ gửi / the email outbox."""


@outbox.command("list")
@click.option("--state", type=click.Choice(["pending", "sending", "sent", "failed"]), help="Chỉ một trạng thái")
@click.option("--limit", default=100, show_default=True, type=int)
def outbox_list(state: str | None, limit: int) -> None:
    """Thư mới nhất trước / newest first."""
    from engine import outbox as mail_outbox

    for m in mail_outbox.list_messages(_engine().db, state=state, limit=limit):
        when = (m.sent_at if m.state == "sent" else m.next_attempt_at).isoformat(timespec="seconds")
        click.echo(f"#{m.id:<7} {m.state:8} {m.attempts}x {when} {m.kind:18} {', '.join(m.recipients)} | {m.subject}")
        if m.last_error and m.state != "sent":
            click.echo(f"         {m.last_error}")


@outbox.command("send")
@click.option("--limit", default=500, show_default=True, type=int)
def outbox_send(limit: int) -> None:
    """Gửi ngay các thư đến hạn / send every due email now."""
    from engine import outbox as mail_outbox

    engine = _engine()
    if not engine.settings.smtp_url:
        click.echo("Chưa cấu hình DIEUPHOI_SMTP_URL: thư vẫn nằm trong hộp thư đi / no SMTP configured", err=True)
        sys.exit(1)
    report = mail_outbox.dispatch(engine.db, engine.settings, engine.clock, limit=limit)
    click.echo(f"Đã gửi {report.sent}, chờ gửi lại {report.retried}, lỗi {report.failed} / "
               f"sent {report.sent}, to retry {report.retried}, failed {report.failed}")


@outbox.command("retry")
@click.argument("ids", nargs=-1, required=True, type=int)
def outbox_retry(ids: tuple[int, ...]) -> None:
    """Gửi lại các thư lỗi / put failed emails back in the queue."""
    from engine import outbox as mail_outbox

    engine = _engine()
    count = mail_outbox.retry(engine.db, ids, engine.clock)
    click.echo(f"Đã đưa {count} thư vào hàng đợi gửi lại / {count} email(s) queued again")


if __name__ == "__main__":
    main()
