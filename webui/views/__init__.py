"""The server-rendered web UI: one blueprint per area, Vietnamese first with an English switch.

`init_views(app)` installs Flask-Babel, CSRF protection (Flask-WTF) on every form, the
sign-in machinery (the Flask-Login manager the API already uses), the pages' error
handlers and the blueprints. Views stay thin: parse the request, call one engine
function, render.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import Babel
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from engine.errors import EngineError
from webui import request_db
from webui.views import formats

log = logging.getLogger(__name__)

LANGUAGES = ("vi", "en")
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
STATIC = Path(__file__).resolve().parent.parent / "static"
csrf = CSRFProtect()


def N_(text: str) -> str:
    """Marks a string for the catalogue where it is translated later (`pybabel extract -k N_`)."""
    return text


def engine():
    return current_app.extensions["dieuphoi"]


def admin_required(view):
    """Administrators only; anyone else signed in gets 403, a visitor the sign-in page."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never an open redirect to somewhere else."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def select_locale() -> str:
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "vi"


# ------------------------------------------------------------------ translations
def compile_translations(instance_dir: Path | None) -> str:
    """Compile the committed .po catalogues to .mo at start-up, so no build step is needed.

    Writes into `<instance>/translations` (or a temporary folder when that is not writable);
    a catalogue is recompiled only when its .po is newer than the .mo.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    candidates = [instance_dir / "translations"] if instance_dir else []
    candidates.append(Path(tempfile.gettempdir()) / "dieuphoi-translations")
    for target in candidates:
        try:
            for po in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
                mo = target / po.relative_to(TRANSLATIONS).with_suffix(".mo")
                if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                    continue
                mo.parent.mkdir(parents=True, exist_ok=True)
                with po.open("rb") as fh:
                    catalog = read_po(fh, locale=po.parent.parent.name)
                partial = mo.with_suffix(f".{os.getpid()}.tmp")  # several processes may start at once
                with partial.open("wb") as fh:
                    write_mo(fh, catalog)
                partial.replace(mo)
            return str(target)
        except OSError:
            log.warning("cannot write compiled translations to %s", target, exc_info=True)
    return str(TRANSLATIONS)


# ------------------------------------------------------------------ errors
ERROR_TITLES = {
    400: N_("Yêu cầu không hợp lệ"),
    403: N_("Không có quyền truy cập"),
    404: N_("Không tìm thấy trang"),
    405: N_("Thao tác không được hỗ trợ"),
    409: N_("Hồ sơ vừa được thay đổi"),
    413: N_("Tệp quá lớn"),
    422: N_("Dữ liệu không hợp lệ"),
    500: N_("Lỗi hệ thống"),
    503: N_("Tạm thời không phục vụ được"),
}


def _wants_json() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def error_page(status: int, message: str | None = None):
    title = _(ERROR_TITLES.get(status, N_("Có lỗi xảy ra")))
    return render_template("error.html", code=status, title=title, message=message), status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(EngineError)
    def _engine_error(exc: EngineError):
        if _wants_json():
            return jsonify(error=exc.to_dict()), exc.status
        return error_page(exc.status, formats.engine_message(exc))

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        return error_page(400, _("Phiên làm việc đã hết hạn hoặc biểu mẫu không hợp lệ. Vui lòng tải lại trang "
                                 "và thử lại."))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            return jsonify(error={"code": exc.name.lower().replace(" ", "_"), "message": exc.description,
                                  "details": {}}), exc.code
        if exc.code and exc.code < 400:
            return exc
        return error_page(exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        from webui.api import http

        if http.database_unavailable(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
            if _wants_json():
                return http.unavailable_response()
            page, status = error_page(503, _("Cơ sở dữ liệu tạm thời không truy cập được, vui lòng thử lại sau giây "
                                             "lát."))
            return page, status, {"Retry-After": str(http.RETRY_AFTER_SECONDS)}
        log.exception("unexpected error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify(error={"code": "internal", "message": "Lỗi hệ thống / Internal error",
                                  "details": {}}), 500
        return error_page(500, _("Hệ thống gặp sự cố khi xử lý yêu cầu. Vui lòng thử lại sau."))


# ------------------------------------------------------------------ page chrome
_NAV = "dieuphoi_nav"


def set_nav(counts, supervisor: bool) -> None:
    """A view that has counted the navigation bar's numbers already hands them over (the inbox does)."""
    setattr(g, _NAV, {"counts": counts, "supervisor": supervisor})


def _nav_counts():
    """The counters and menu of the navigation bar: handed over by the view, or a small query."""
    if not current_user.is_authenticated:
        return None
    if g.get(_NAV) is not None:
        return g.get(_NAV)
    from engine import queries
    from engine.dashboard import inbox_counts

    eng = engine()
    try:
        with request_db.read() as s:
            user_id = int(current_user.get_id())
            counts = inbox_counts(s, user_id, eng.today(), eng.now())
            supervises = current_user.is_admin or bool(queries.org_codes(s, user_id, queries.SUPERVISING_ROLES))
        return {"counts": counts, "supervisor": supervises}
    except Exception:  # noqa: BLE001 - the counters must never break a page
        log.warning("inbox counts failed", exc_info=True)
        return None


def _vendor(name: str) -> bool:
    return (STATIC / "vendor" / name).is_file()


def _security_headers(response):
    if _wants_json():
        return response
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
    return response


def init_views(app: Flask) -> None:
    eng = app.extensions["dieuphoi"]
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "vi")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", eng.settings.timezone)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES",
                          compile_translations(getattr(eng.settings, "instance_dir", None)))
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session: a long form is not lost
    Babel(app, locale_selector=select_locale, timezone_selector=lambda: eng.settings.timezone)
    csrf.init_app(app)

    from webui.api.auth import init_login

    manager = init_login(app)
    manager.login_view = "auth.login"
    manager.login_message = N_("Vui lòng đăng nhập để tiếp tục.")
    manager.localize_callback = _
    manager.login_message_category = "info"

    from webui.views import admin, admin_ops, auth, dashboard, instances, start, tasks

    for module in (auth, tasks, instances, start, dashboard, admin, admin_ops):
        app.register_blueprint(module.bp)

    for name, function in formats.FILTERS.items():
        app.add_template_filter(function, name)
    app.add_template_global(formats.deadline_badge, "deadline_badge")
    app.add_template_global(formats.locale_code, "locale_code")
    app.add_template_global(tasks.SEARCH_MAX, "search_max")
    from webui.views import catalogue

    app.add_template_global(catalogue.ACTIONS, "action_labels")
    app.add_template_global(catalogue.STATUSES, "status_labels")
    app.add_template_global(catalogue.TASK_STATES, "task_state_labels")
    app.add_template_global(catalogue.ROLES, "role_labels")

    @app.context_processor
    def _chrome():
        return {"nav": _nav_counts() if request.endpoint and not request.endpoint.startswith("static") else None,
                "has_vendor": _vendor, "languages": LANGUAGES}

    @app.get("/lang/<code>")
    def set_language(code: str):
        if code in LANGUAGES:
            session["lang"] = code
        return redirect(safe_next(request.args.get("next"), url_for("tasks.inbox")))

    app.after_request(_security_headers)
    _register_errors(app)


def exempt_api_from_csrf(app: Flask) -> None:
    """The REST API proves its origin its own way (Bearer token, or Origin / X-Requested-With)."""
    api = app.blueprints.get("api")
    if api is not None:
        csrf.exempt(api)
