"""Flask application factory: one blueprint per area; the engine does the work."""

from __future__ import annotations

from flask import Flask

from engine.runtime import Engine


def create_app(engine: Engine | None = None, test_config: dict | None = None) -> Flask:
    from engine.app import build

    app = Flask(__name__)
    engine = engine or build()
    app.config.update(SECRET_KEY=engine.settings.secret_key, MAX_CONTENT_LENGTH=engine.settings.max_upload_bytes,
                      SESSION_COOKIE_SECURE=engine.settings.base_url.startswith("https://"),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")  # Flask's default is no SameSite
    if test_config:
        app.config.update(test_config)
    app.extensions["dieuphoi"] = engine

    from webui import request_db

    request_db.init_app(app)  # one read connection per request, closed when it ends

    from webui.status import bp as status_bp

    app.register_blueprint(status_bp)

    from webui.api import init_api  # REST API /api/v1 (JSON errors for every /api/ path)

    init_api(app)

    from webui.views import exempt_api_from_csrf, init_views  # web pages: Babel, CSRF, sign-in, error pages

    init_views(app)
    exempt_api_from_csrf(app)
    app.after_request(_inert_documents)  # runs before the pages' own headers (reverse order)

    return app


_DOCUMENTS = ("application/xml", "text/xml", "image/svg+xml")


def _inert_documents(response):
    """A stored model served from our origin (the case diagram) is data for bpmn-js, never a page:
    an XHTML <script> an uploader put inside it must not run if someone opens the file itself."""
    if response.mimetype in _DOCUMENTS:
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
