"""Flask application factory: one blueprint per area; the engine does the work."""

from __future__ import annotations

from flask import Flask

from engine.runtime import Engine


def create_app(engine: Engine | None = None, test_config: dict | None = None) -> Flask:
    from engine.app import build

    app = Flask(__name__)
    engine = engine or build()
    app.config.update(SECRET_KEY=engine.settings.secret_key, MAX_CONTENT_LENGTH=engine.settings.max_upload_bytes)
    if test_config:
        app.config.update(test_config)
    app.extensions["dieuphoi"] = engine

    from webui.status import bp as status_bp

    app.register_blueprint(status_bp)

    from webui.api import init_api  # REST API /api/v1 (JSON errors for every /api/ path)

    init_api(app)

    from webui.views import exempt_api_from_csrf, init_views  # web pages: Babel, CSRF, sign-in, error pages

    init_views(app)
    exempt_api_from_csrf(app)

    return app
