"""The OpenAPI document as a browsable HTML page, rendered on the server.

No script at all, and nothing from a CDN: the page is plain HTML with one
inline stylesheet, allowed by its hash in the page's own Content-Security-
Policy (``DOCS_CSP``; every other API answer keeps ``default-src 'none'``).
So it costs the browser client's JS budget nothing and needs no build step.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any

_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;"
    "color:#1b1b1b}h2{border-bottom:1px solid #ccc;margin-top:2rem}"
    "details{border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}"
    "summary{cursor:pointer}code,pre{font:13px ui-monospace,monospace}"
    "pre{background:#f5f5f5;padding:.5rem;overflow-x:auto}"
    ".m{display:inline-block;min-width:4.2rem;font-weight:700}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;"
    "text-align:left;vertical-align:top}"
)
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

#: The page's policy: its own stylesheet, nothing else; never framed.
DOCS_CSP = f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; frame-ancestors 'none'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _md(text: object) -> str:
    """Escaped text with its `code spans` as <code> (the only markup descriptions use)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _pre(value: Any) -> str:
    return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _name(schema: dict[str, Any]) -> str:
    target = schema.get("$ref", "")
    short = target.rsplit("/", 1)[-1]
    return f'<a href="#{_e(short)}">{_e(short)}</a>' if short else _pre(schema)


def _operation(method: str, path: str, op: dict[str, Any], errors: dict[str, Any]) -> str:
    rows = []
    for param in op.get("parameters", []):
        rows.append(
            f"<tr><td><code>{_e(param['name'])}</code></td><td>{_e(param['in'])}</td>"
            f"<td><code>{_e(json.dumps(param['schema']))}</code></td>"
            f"<td>{_md(param.get('description', ''))}</td></tr>"
        )
    params = f"<table>{''.join(rows)}</table>" if rows else ""
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    request = f"<p>Request body: {_name(body['schema'])}</p>" if body else ""
    answers = []
    for status, response in op["responses"].items():
        if "$ref" in response:
            said = errors[response["$ref"].rsplit("/", 1)[-1]]["description"]
            answers.append(f"<tr><td>{_e(status)}</td><td>{_name(response)}: {_md(said)}</td></tr>")
            continue
        content: dict[str, Any] = next(iter(response.get("content", {}).values()), {})
        shape = _name(content["schema"]) if "schema" in content else ""
        answers.append(
            f"<tr><td>{_e(status)}</td><td>{shape} {_md(response['description'])}</td></tr>"
        )
    auth = "public" if op.get("security") == [] else "bearer token"
    return (
        f"<details><summary><span class=m>{_e(method.upper())}</span> <code>{_e(path)}</code>"
        f" — {_md(op.get('summary', ''))}</summary><p>{auth}. {_md(op.get('description', ''))}</p>"
        f"{params}{request}<table><tr><th>status</th><th>body</th></tr>{''.join(answers)}</table>"
        "</details>"
    )


def render(document: dict[str, Any], json_path: str) -> str:
    """The page for ``document`` (an OpenAPI 3.1 dict), linking to its JSON at ``json_path``."""
    info, errors = document["info"], document["components"]["responses"]
    by_tag: dict[str, list[str]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(method, path, op, errors))
    sections = "".join(f"<h2>{_e(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    components = document["components"]
    schemas = "".join(
        f'<h3 id="{_e(name)}">{_e(name)}</h3>{_pre(schema)}'
        for name, schema in {**components["schemas"], **components["responses"]}.items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(info['title'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(info['title'])} v{_e(info['version'])}</h1><p>{_md(info['description'])}</p>"
        f'<p>Machine-readable: <a href="{_e(json_path)}">{_e(json_path)}</a> (OpenAPI'
        f" {_e(document['openapi'])}).</p>{sections}<h2>Schemas</h2>{schemas}</body></html>"
    )
