"""The OpenAPI document is valid OpenAPI 3.1 and describes exactly the routes that exist."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.webui.conftest import API

IMPLICIT = {"HEAD", "OPTIONS"}


def test_the_document_is_served_without_authentication_and_is_valid(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.is_json
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": API}]


def test_every_api_rule_is_documented_and_every_documented_route_exists(app, client):
    document = client.get(f"{API}/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(API):])
        served |= {(path, m) for m in rule.methods - IMPLICIT}
    assert served == documented


def test_every_operation_documents_its_parameters_errors_and_security(client):
    document = client.get(f"{API}/openapi.json").get_json()
    public = {("/auth/token", "post"), ("/openapi.json", "get"), ("/health", "get")}
    for path, ops in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in ops.items():
            assert op["operationId"] and op["summary"], (path, method)
            in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert in_path == names, (path, method)
            if (path, method) in public:
                assert op["security"] == []
            else:
                assert {"bearerAuth": []} in op["security"] and "401" in op["responses"], (path, method)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}


def test_the_design_routes_are_all_there(client):
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    expected = {
        "/auth/token": {"post"}, "/auth/tokens": {"get"}, "/auth/tokens/{token_id}": {"delete"},
        "/definitions": {"get", "post"}, "/instances": {"get", "post"}, "/instances/{instance_id}": {"get"},
        "/instances/{instance_id}/comments": {"post"}, "/instances/{instance_id}/cancel": {"post"},
        "/instances/{instance_id}/suspend": {"post"}, "/instances/{instance_id}/resume": {"post"},
        "/tasks": {"get"}, "/tasks/{task_id}": {"get"}, "/messages": {"post"}, "/openapi.json": {"get"},
        "/health": {"get"},
        **{f"/tasks/{{task_id}}/{a}": {"post"} for a in ("claim", "unclaim", "complete", "return", "reassign")},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path


def test_the_health_check_still_answers(client):
    assert client.get(f"{API}/health").get_json()["status"] == "ok"
