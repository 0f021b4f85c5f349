"""The OpenAPI document: it matches the routes, it renders, and real answers conform.

schemathesis generates requests from the document for every operation and
sends them to a real ``liaison serve --demo``, as a demo dispatcher and as the
deployment admin: no answer may be a 5xx, and every answer must be one the
document lists (status, content type, body schema, headers).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from server.settings import Settings
from server.transport.api_headers import is_api
from server.transport.docs_page import DOCS_CSP
from server.transport.openapi import DOCS_PATH, OPENAPI_PATH, document
from tests.conftest import ADMIN_PASSWORD, DEMO_PASSWORD, LiaisonServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

#: Examples per operation and run: 32 operations x 3 runs take about 20 s on
#: loopback. Derandomized: the same requests every run. For a deeper hunt,
#: LIAISON_OPENAPI_EXAMPLES=500 (not in the suite).
EXAMPLES = int(os.environ.get("LIAISON_OPENAPI_EXAMPLES", "12"))

#: Operations that end the session they are sent with: each case gets its own.
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/password")}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """A demo server of this module's own: fuzzed logins fail by the hundred, and
    the address throttle must not refuse the logins the test itself needs."""
    srv = LiaisonServer(
        tmp_path_factory.mktemp("openapi"),
        env={"LIAISON_LOGIN_ADDRESS_MAX_FAILURES": "100000"},
    )
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], "the server logged errors"


def login(srv: LiaisonServer, username: str, password: str) -> str:
    answer = requests.post(
        srv.url + "/api/v1/auth/login",
        json={"username": username, "password": password},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def operations(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the document; one schemathesis cannot read fails the test."""
    out = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        out.append(result.ok())
    return out


def demo_incident(srv: LiaisonServer) -> str:
    """The demo's incident, with responders of both organisations on it (their
    positions are shown, redacted or coarsened, in the view)."""
    token = login(srv, "dispatch", DEMO_PASSWORD)
    answer = requests.get(
        srv.url + "/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    incident: str = answer.json()["incidents"][0]["id"]
    for username in ("officer", "outreach"):
        command: dict[str, Any] = {
            "type": "responder.status",
            "id": f"openapi-{username}",
            "incident": incident,
            "status": "en_route",
            "position": {"lat": 51.5061, "lon": -0.0768, "accuracy_m": 12},
        }
        headers = {"Authorization": f"Bearer {login(srv, username, DEMO_PASSWORD)}"}
        sent = requests.post(
            srv.url + "/api/v1/commands", json=command, headers=headers, timeout=10
        )
        assert sent.status_code == 200, sent.text
    return incident


def aimed(incident: str, case: Any) -> Any:
    """The generated command, sent to a real incident."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "incident": incident}
    return case


def cases(operation: Any, incident: str, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Generated requests; half of those about an incident name a real one, so the
    view, the timeline and stored commands are checked too, not only refusals."""
    generated = operation.as_strategy(mode)
    if mode is GenerationMode.NEGATIVE:
        return generated  # type: ignore[no-any-return]
    if operation.path.startswith("/api/v1/incidents/{id}"):
        real = operation.as_strategy(mode, path_parameters={"id": incident})
        return st.one_of(generated, real)
    if operation.path == "/api/v1/commands":
        return st.one_of(generated, generated.map(lambda case: aimed(incident, case)))
    return generated  # type: ignore[no-any-return]


def registered_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path, demo=True))
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and is_api(route.resource.canonical)
        and route.method not in ("HEAD", "*")
    }


def test_every_route_is_in_the_document_and_back(tmp_path: Path) -> None:
    documented = {
        (method.upper(), path) for path, ops in document()["paths"].items() for method in ops
    }
    assert registered_routes(tmp_path) == documented


def test_the_document_is_served_and_loads(api_server: LiaisonServer) -> None:
    with urllib.request.urlopen(api_server.url + OPENAPI_PATH, timeout=5) as resp:  # noqa: S310
        assert resp.headers["Content-Type"].startswith("application/json")
        served = json.loads(resp.read())
    assert served == json.loads(json.dumps(document()))
    assert served["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(served)
    assert len(operations(schema)) == sum(len(ops) for ops in served["paths"].values())


def test_the_page_renders_every_operation_without_scripts(api_server: LiaisonServer) -> None:
    with urllib.request.urlopen(api_server.url + DOCS_PATH, timeout=5) as resp:  # noqa: S310
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.headers["Content-Security-Policy"] == DOCS_CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        page = resp.read().decode()
    assert "<script" not in page
    assert "src=" not in page
    assert "https://" not in page
    for path in document()["paths"]:
        assert f"<code>{path}</code>" in page
    assert "script-src" not in DOCS_CSP
    assert "default-src 'none'" in DOCS_CSP


@pytest.mark.parametrize(
    ("username", "password", "mode"),
    [
        ("dispatch", DEMO_PASSWORD, GenerationMode.POSITIVE),
        ("admin", ADMIN_PASSWORD, GenerationMode.POSITIVE),
        # Requests the document does not allow (wrong types, missing fields,
        # mangled headers): typed 4xx answers the document lists, never a 5xx.
        ("admin", ADMIN_PASSWORD, GenerationMode.NEGATIVE),
    ],
)
def test_answers_conform_to_the_document(
    api_server: LiaisonServer, username: str, password: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document())))
    token = login(api_server, username, password)
    incident = demo_incident(api_server)
    session = requests.Session()
    failures: list[str] = []
    for operation in operations(schema):

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases(operation, incident, mode))
        def run(case: Any) -> None:
            key = (case.method.upper(), case.path)
            own = login(api_server, username, password) if key in SESSION_ENDING else token
            headers = {"Authorization": f"Bearer {own}"}
            response = case.call(base_url=api_server.url, session=session, headers=headers)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except Unsatisfiable:  # a GET without parameters has nothing to get wrong
            assert mode is GenerationMode.NEGATIVE
        except (Exception, BaseExceptionGroup) as exc:  # every operation's, then report all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert failures == [], "\n\n".join(failures)


def test_the_rarer_refusals_conform_too(api_server: LiaisonServer) -> None:
    """Refusals random requests seldom reach: throttled logins (429 with
    Retry-After), bodies over the limit (413), positions past the head (416),
    a taken id (409)."""
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document())))
    admin = {"Authorization": f"Bearer {login(api_server, 'admin', ADMIN_PASSWORD)}"}
    incident = demo_incident(api_server)
    login_op = schema["/api/v1/auth/login"]["POST"]
    wrong: dict[str, Any] = {"username": "sergeant", "password": "not-the-password"}
    expected = [
        *[(login_op.Case(body=wrong), {}, 401) for _ in range(5)],
        (login_op.Case(body=wrong), {}, 429),
        (
            schema["/api/v1/orgs"]["POST"].Case(
                body={"id": "metro-police", "name": "M", "kind": "police"}
            ),
            admin,
            409,
        ),
        (
            schema["/api/v1/orgs"]["POST"].Case(body={"id": "x", "name": "x" * 70000, "kind": "k"}),
            admin,
            413,
        ),
        (
            schema["/api/v1/incidents/{id}/timeline"]["GET"].Case(
                path_parameters={"id": incident}, query={"after_seq": 10**6}
            ),
            {"Authorization": f"Bearer {login(api_server, 'dispatch', DEMO_PASSWORD)}"},
            416,
        ),
    ]
    for case, headers, status in expected:
        response = case.call(base_url=api_server.url, headers=headers)
        assert response.status_code == status, (case.path, response.text)
        assert ("retry-after" in response.headers) is (status == 429)  # lower-cased keys
        case.validate_response(response, checks=CHECKS, headers=headers)


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/api/v1/incidents"), ("GET", "/api/v1/nope")]
)
def test_what_the_document_does_not_list_is_a_typed_404(
    api_server: LiaisonServer, method: str, path: str
) -> None:
    answer = requests.request(method, api_server.url + path, timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert path not in document()["paths"] or method.lower() not in document()["paths"][path]
