"""Flask application factory: one blueprint per area; the engine does the work."""

from __future__ import annotations

from flask import Flask, jsonify, render_template

from engine.errors import EngineError
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

    @app.errorhandler(EngineError)
    def _engine_error(exc: EngineError):
        return jsonify(error=exc.to_dict()), exc.status

    @app.errorhandler(404)
    def _not_found(_exc):
        return render_template("error.html", code=404, message="Không tìm thấy trang / Page not found"), 404

    @app.errorhandler(500)
    def _server_error(_exc):
        return render_template("error.html", code=500, message="Lỗi hệ thống / Internal error"), 500

    return app
