"""Stored and reflected XSS: every page that shows text someone else typed, rendered with probes.

The `world` fixture stores probes in process and definition titles, file names, task names,
instructions, form labels, help text, options and defaults of an uploaded JSON Schema, task
data and business fields, a return reason, a comment, an error, a failed timer, an API
token name, user full names and an organisation's name. Every page that shows them must
show them escaped: no `<script>`/`<img onerror>` element appears, no quote breaks out of an
attribute, and JSON embedded for bpmn-js or chart.js cannot close its `<script>` element.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from tests.security.conftest import payload

# Raw fragments that only appear when a probe is NOT escaped.
RAW = [
    re.compile(r'<script>alert\("'),
    re.compile(r"<img src=x onerror"),
    re.compile(r'" onmouseover="alert'),
    re.compile(r"' onfocus='alert"),
    re.compile(r"</script><img"),
]
PROBE_TEXT = re.compile(r'alert\(["\']?(?:&#3[49];|&quot;|\\u0022|\\")?([a-z_]+)')


def leaks(body: str) -> list[str]:
    return [p.pattern for p in RAW if p.search(body)]


def pages(world) -> dict[str, list[str]]:
    """Who looks at which page (each shows some of the probes)."""
    w = world
    common = ["/", "/?scope=group", "/?status=done", "/instances", f"/instances/{w.instance_id}",
              f"/instances/{w.instance_id - 1}", f"/tasks/{w.task_id}", f"/tasks/{w.done_task_id}", "/start",
              "/start/xss", "/password"]
    supervisor = common + ["/dashboard", "/dashboard?period=all", "/dashboard/tasks?org=SO_NNPTNT",
                           "/dashboard/tasks?org=SO_NNPTNT&status=done"]
    admin = supervisor + ["/admin/", "/admin/users", f"/admin/users/{w.user_id}", "/admin/organisations",
                          "/admin/substitutes", "/admin/definitions", f"/admin/definitions/{w.definition_id}",
                          "/admin/outbox", "/admin/timers", "/status"]
    if w.outbox_id:
        admin.append(f"/admin/outbox/{w.outbox_id}")
    return {"nn.cv": common, "nn.ld": supervisor, "admin": admin}


def test_stored_probes_are_escaped_on_every_page(world, browser_for):
    seen = set()
    for user, paths in pages(world).items():
        for path in paths:
            for lang in ("vi", "en"):
                client = browser_for(user)
                client.get(f"/lang/{lang}")
                response = client.get(path)
                assert response.status_code == 200, (user, path, response.status_code)
                body = response.get_data(as_text=True)
                assert not leaks(body), (user, lang, path, leaks(body))
                seen.update(PROBE_TEXT.findall(body))
        browser_for(user).get("/lang/vi")
    # The probes really were on the pages (escaped), so the check above looked at them.
    for tag in ("org", "user", "title", "task_name", "label", "help", "data", "comment", "reason",
                "case_error", "timer_error", "list_field", "instructions", "file", "supervisor"):
        assert tag in seen, f"probe {tag!r} never shown: the page list misses where it appears"


def test_embedded_json_cannot_close_its_script_element(world, browser_for):
    dashboard = browser_for("admin").get("/dashboard?period=all").get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', dashboard, re.S)
    assert match, "the chart data block is where the chart reads it"
    assert "org" in match.group(1) and "<" not in match.group(1)  # the org label is there, with < escaped
    for body in re.findall(r"<script\b[^>]*>(.*?)</script>", dashboard, re.S):
        assert "alert(" not in body or "\\u003c" in body


def test_the_diagram_file_cannot_run_script_in_the_browser(world, browser_for):
    """The stored BPMN is served as XML from our origin: an XHTML <script> inside it must not run."""
    response = browser_for("nn.cv").get(f"/instances/{world.instance_id}/diagram.bpmn")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy.replace("script-src 'none'", "")


def test_reflected_probes_in_query_strings_and_paths_are_escaped(world, browser_for):
    probe = quote(payload("reflected"))
    paths = [f"/?scope={probe}", f"/?process={probe}", f"/instances?process={probe}", f"/instances?status={probe}",
             f"/dashboard?org={probe}", f"/dashboard?process={probe}", f"/dashboard?period={probe}",
             f"/dashboard/tasks?org={probe}&process={probe}", f"/start/{probe}", f"/tasks/{probe}",
             f"/admin/outbox?state={probe}", f"/login?next={probe}"]
    for path in paths:
        body = browser_for("admin").get(path).get_data(as_text=True)
        assert not leaks(body), (path, leaks(body))


def test_the_sign_in_page_echoes_the_username_escaped(web):
    response = web.test_client().post("/login", data={"username": payload("login"), "password": "x"})
    assert response.status_code == 401
    assert not leaks(response.get_data(as_text=True))
