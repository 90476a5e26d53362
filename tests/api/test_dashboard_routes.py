"""The dashboard's routes over HTTP (issue 11; docs/contract.md "Dashboard"), on both backends, every
answer validated against docs/openapi.yaml: the page, its redirect, its content-hashed assets, 404
and 405, the headers on every answer, `--dashboard off` and an escaped `--dashboard-title`. What
the page does in a browser is tests/browser/test_dashboard.py."""

import re

import pytest
import requests

from conftest import SPEC, assert_error, free_port, run_cli

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def get(server, path, method="GET"):
    r = requests.request(method, server.base_url + path, allow_redirects=False, timeout=10)
    r.body = SPEC.check(method, path, r)  # the parsed JSON of an error, as assert_error reads it
    return r


def assets(page):
    return re.findall(r'assets/(app\.[0-9a-f]{12}\.(?:js|css))"', page)


def test_page_redirect_and_assets_with_their_headers(shared_server):
    r = get(shared_server, "/dashboard")
    assert r.status_code == 301 and r.headers["Location"] == "/dashboard/"
    page = get(shared_server, "/dashboard/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache"
    names = assets(page.text)
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["css", "js"]
    for name in names:
        r = get(shared_server, "/dashboard/assets/" + name)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["Content-Type"].startswith("text/javascript" if name.endswith(".js") else "text/css")
        head = get(shared_server, "/dashboard/assets/" + name, "HEAD")
        assert head.status_code == 200 and head.content == b""
    for r in [page, get(shared_server, "/dashboard/", "HEAD")] + [get(shared_server, "/dashboard/assets/" + n) for n in names]:
        assert r.headers["Content-Security-Policy"] == CSP and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_assets_and_other_methods(shared_server):
    for path in ["/dashboard/assets/app.000000000000.js", "/dashboard/assets/", "/dashboard/assets/../index.html",
                 "/dashboard/nope"]:
        r = get(shared_server, path)
        assert_error(r, 404, "not_found")
        assert r.headers["Content-Security-Policy"] == CSP
    name = assets(get(shared_server, "/dashboard/").text)[0]
    for method, path in [("POST", "/dashboard/"), ("DELETE", "/dashboard/"), ("PUT", "/dashboard/assets/" + name)]:
        r = get(shared_server, path, method)
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "GET, HEAD"


def test_dashboard_off_is_an_unknown_path_and_the_api_stays(server_factory):
    server = server_factory("--dashboard", "off")
    for path in ["/dashboard/", "/dashboard", "/dashboard/assets/app.000000000000.js"]:
        assert_error(get(server, path), 404, "not_found")
    assert server.client.get().status_code == 200


def test_the_title_is_text_in_the_page(server_factory):
    server = server_factory("--dashboard-title", 'Acme & <script>alert("x")</script>')
    page = get(server, "/dashboard/").text
    assert "Acme &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "<script>alert" not in page


@pytest.mark.parametrize("title", ["", "   ", "x" * 101, "tab\there", "bell\x07"], ids=["empty", "blank", "101", "tab", "control"])
@pytest.mark.parametrize("dashboard", ["on", "off"])
def test_a_bad_title_stops_the_start_with_one_line_and_opens_nothing(title, dashboard, tmp_path):
    db = tmp_path / "x.db"
    p = run_cli("serve", "--db", db, "--listen", f"127.0.0.1:{free_port()}", "--dashboard", dashboard,
                "--dashboard-title", title)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and "--dashboard-title" in p.stderr, p.stderr
    assert p.stdout == "" and not db.exists()
