"""The committed OpenAPI document and the routes of the worker's web server agree."""

from __future__ import annotations

from importlib import resources

import faust
import pytest
import yaml
from factories import make_settings

from stream.app import create_app

METHODS = ("get", "head", "post", "put", "patch", "delete")

NOT_YET_ROUTED: set[tuple[str, str]] = set()
"""Documented before they are routed (each must be routed eventually: the test says when)."""


def _document() -> dict[str, object]:
    text = resources.files("stream.web.static").joinpath("openapi.yaml").read_text()
    data: dict[str, object] = yaml.safe_load(text)
    return data


def _routed() -> set[tuple[str, str]]:
    app = create_app(make_settings(projector_enabled=False, web_enabled=True))
    routed = set()
    for path, view in app.web.views.items():  # instances of the view classes
        for cls in type(view).__mro__:
            if cls is faust.web.View:
                break
            routed |= {(path, method) for method in METHODS if method in vars(cls)}
    return routed


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    paths = _document()["paths"]
    assert isinstance(paths, dict)
    documented = {(p, m) for p, item in paths.items() for m in item if m in METHODS}
    routed = _routed()
    assert routed - documented == set(), "routes missing from stream/web/static/openapi.yaml"
    assert documented - routed <= NOT_YET_ROUTED, "documented routes the app does not serve"
    for pending in NOT_YET_ROUTED:
        if pending in routed:
            pytest.fail(f"{pending} is routed now: remove it from NOT_YET_ROUTED")


def test_document_is_openapi_3() -> None:
    document = _document()
    assert str(document["openapi"]).startswith("3.")
    assert "bearer" in document["components"]["securitySchemes"]  # type: ignore[index]
