"""The OpenAPI document and a browsable page for it (Swagger UI served from its PyPI package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, send_from_directory

from gateway.bank_api.app import services
from gateway.bank_api.config import REGULATOR
from gateway.bank_api.openapi import openapi_document
from gateway.bank_api.routes.common import json_response

bp = Blueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs", deepLinking: true});
  </script>
</body>
</html>
"""

_FALLBACK_STYLE = "body{font-family:sans-serif;max-width:60em;margin:2em auto}code{background:#eee}"


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _document() -> dict[str, Any]:
    """This gateway's document: the regulator's gateway serves other routes than a bank's."""
    if services().config.role == REGULATOR:
        from gateway.bank_api.regulator_openapi import regulator_document

        return regulator_document()
    return openapi_document()


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(_document())


@bp.get("/docs")
def docs_page() -> Response:
    if _swagger_dir() is not None:
        from html import escape

        return Response(_PAGE.replace("{title}", escape(_document()["info"]["title"])), mimetype="text/html")
    return Response(_listing(), mimetype="text/html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    directory = _swagger_dir()
    if directory is None or filename not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        abort(404)
    return send_from_directory(directory, filename, max_age=3600)


def _listing() -> str:
    """A plain page listing the operations, for installs without the Swagger UI package."""
    from html import escape

    document = _document()
    title = escape(document["info"]["title"])
    rows = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rows.append(
                f"<li><code>{escape(method.upper())} {escape(path)}</code> {escape(operation.get('summary', ''))}</li>"
            )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_FALLBACK_STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>The machine-readable document is at <a href='/openapi.json'>/openapi.json</a>.</p>"
        f"<ul>{''.join(rows)}</ul></body></html>"
    )
