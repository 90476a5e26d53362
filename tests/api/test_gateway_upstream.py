"""Gateway mode (issue 15): upstreams that fail, the metrics and logs of the proxy, its
connection pool, and HTTP/1.1 framing between client and upstream; on both backends.

- An upstream that is down, closes or resets without answering: 502 upstream_unavailable; one
  that answers garbage: 502 bad_upstream_response; one that does not answer within
  --upstream-first-byte-timeout: 504 upstream_timeout; all in the API's error shape, with a
  request id. A failure after the response head cuts the response short: the client can tell.
- Metrics: apikeyd_requests_total{route="gateway"}, apikeyd_verify_total, and per route
  apikeyd_upstream_duration_seconds and apikeyd_upstream_errors_total{reason}.
- Keep-alive to upstreams: connections are reused, closed after --upstream-idle-timeout, and one
  the upstream closed while idle is not an error; a response with bytes past its end never
  answers another request.
- Request smuggling: the framing attacks of test_hardening.py (Content-Length with
  Transfer-Encoding, two Content-Lengths) sent to a route path, alone and behind a good request
  on a kept-alive connection: the upstream never receives a smuggled request. A request hidden
  in a body stays a body; a request pipelined behind another is authenticated on its own.
"""

import http.client
import json
import socket
import struct
import time
import uuid
from types import SimpleNamespace

import pytest
import requests

from conftest import LOG_TIMEOUT, ServerFactory, free_port, wait_until
from test_hardening import http_request, parse_response, read_until_closed
from upstream import SMUGGLED_BODY, GwResponse, Upstream, assert_gw_error, dead_port, gw_request, metric, parse_metrics

FIRST_BYTE_TIMEOUT = 1  # --upstream-first-byte-timeout, seconds (the smallest allowed)
IDLE_TIMEOUT = 1  # --upstream-idle-timeout
CLOSE_TIMEOUT = 15.0  # apikeyd closing an idle upstream connection (the timeout is 1 s; generous)
RAW_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def env(backend, apikeyd_bin, tmp_path_factory):
    ups = {name: Upstream(mode=mode, name=name) for name, mode in
           (("ok", "echo"), ("pool", "echo"), ("hang", "hang"), ("garbage", "garbage"), ("reset", "reset"),
            ("close", "close"))}  # fmt: skip
    routes = {"/ok": ups["ok"].url, "/pool": ups["pool"].url, "/down": f"http://127.0.0.1:{dead_port()}",
              **{f"/{n}": ups[n].url for n in ("hang", "garbage", "reset", "close")}}  # fmt: skip
    metrics_port = free_port()
    args = ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--auth-failures", "0",
            "--upstream-first-byte-timeout", FIRST_BYTE_TIMEOUT, "--upstream-idle-timeout", IDLE_TIMEOUT]  # fmt: skip
    for prefix, url in routes.items():
        args += ["--route", f"{prefix}={url}"]
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway-upstream"))
    try:
        server = factory(*args)
        yield SimpleNamespace(server=server, up=ups, routes=routes, metrics_port=metrics_port, key=server.account.key)
    finally:
        factory.close_all()
        for u in ups.values():
            u.close()


def send(env, target, key=True, method="GET", headers=(), body=None, **kw):
    hdrs = list(headers)
    if key:
        hdrs.insert(0, ("Authorization", f"Bearer {env.key if key is True else key}"))
    return gw_request(env.server.port, method, target, hdrs, body, **kw)


def scrape(env):
    r = requests.get(f"http://127.0.0.1:{env.metrics_port}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return parse_metrics(r.text)


def marker():
    return "m-" + uuid.uuid4().hex[:12]


def total(env):
    return sum(u.count() for u in env.up.values())


# --------------------------------------------------------------------------- failures


def assert_upstream_error(r, status, code):
    assert_gw_error(r, status, code)
    assert r.headers.get("X-Request-Id"), r.headers_list


def test_upstream_down_is_502_upstream_unavailable(env):
    for method in ("GET", "POST"):
        r = send(env, "/down/x?y=1", method=method, body=b"{}" if method == "POST" else None)
        assert_upstream_error(r, 502, "upstream_unavailable")


@pytest.mark.parametrize("how", ["close", "reset"])
def test_upstream_closing_without_an_answer_is_502_upstream_unavailable(env, how):
    m = marker()
    r = send(env, f"/{how}/{m}")
    assert_upstream_error(r, 502, "upstream_unavailable")
    assert env.up[how].matching(m), "the request never reached the upstream"


def test_garbage_from_the_upstream_is_502_bad_upstream_response(env):
    m = marker()
    r = send(env, f"/garbage/{m}")
    assert_upstream_error(r, 502, "bad_upstream_response")
    assert env.up["garbage"].matching(m)


@pytest.fixture(scope="module")
def fragile(backend, apikeyd_bin, tmp_path_factory):
    """A server of its own for malformed upstream answers: if one kills it, the test says so and
    the server is started again, so that the other cases (and the module's other tests) still run."""
    up = Upstream(name="malformed")
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway-malformed"))
    try:
        server = factory("--route", f"/ok={up.url}", "--auth-failures", "0")
        yield SimpleNamespace(server=server, up=up, key=server.account.key)
    finally:
        factory.close_all()
        up.close()


def survived(fragile, what):
    """Fails (after starting the server again) if the server died."""
    server = fragile.server
    time.sleep(0.05)
    rc = server.proc.poll()
    if rc is None:
        return
    tail = server.log_text()[-600:]
    server.proc = None
    server.start()
    pytest.fail(f"apikeyd died (exit status {rc}) after {what}; stderr tail:\n{tail}")


@pytest.mark.parametrize("variant", ["status-101", "http2-line", "bad-status", "status-600", "bad-content-length",
                                     "two-content-lengths", "bad-header-line"])  # fmt: skip
def test_malformed_upstream_answer_is_502_bad_upstream_response(fragile, variant):
    """Not HTTP/1.x, a malformed head or Content-Length, a status outside 200..599 (contract):
    502 bad_upstream_response, and the server goes on serving."""
    m = marker()
    try:
        r = send(fragile, f"/ok/{m}?up=raw&v={variant}")
    except (http.client.HTTPException, ConnectionError) as e:
        survived(fragile, f"an upstream answer {variant!r}")
        pytest.fail(f"no answer to the client: {e!r}")
    survived(fragile, f"an upstream answer {variant!r}")
    assert_upstream_error(r, 502, "bad_upstream_response")
    assert fragile.up.matching(m)
    assert send(fragile, f"/ok/{marker()}").status == 200


def test_upstream_closing_inside_its_head_is_502(fragile):
    try:
        r = send(fragile, f"/ok/{marker()}?up=raw&v=head-only-eof")
    finally:
        survived(fragile, "an upstream closing inside its head")
    assert r.status == 502, r
    assert r.json()["error"]["code"] in ("upstream_unavailable", "bad_upstream_response"), r


def test_no_answer_in_time_is_504_upstream_timeout(env):
    m = marker()
    r = send(env, f"/hang/{m}")
    assert_upstream_error(r, 504, "upstream_timeout")
    assert env.up["hang"].matching(m)
    # The head comes, but later than the first-byte timeout.
    r = send(env, f"/ok/{marker()}?up=hang&after={FIRST_BYTE_TIMEOUT + 2}")
    assert_upstream_error(r, 504, "upstream_timeout")
    # The server goes on serving the other routes.
    assert send(env, f"/ok/{marker()}").status == 200


def test_upstream_timeout_closes_the_upstream_connection(env):
    """A request given up on is not left hanging at the upstream."""
    hang = env.up["hang"]
    send(env, f"/hang/{marker()}")
    wait_until(lambda: hang.open_count() == 0, CLOSE_TIMEOUT, what="apikeyd to close the hanging upstream connection")


def test_failure_after_the_head_cuts_the_response_short(env):
    size = 4 * 1024 * 1024
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=15)
    try:
        conn.putrequest("GET", f"/ok/{marker()}?up=cut&size={size}", skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {env.key}")
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 200  # the head was on its way
        announced = r.getheader("Content-Length")
        got = 0
        try:
            while True:
                chunk = r.read(65536)  # at an early EOF: b"" (Content-Length) or IncompleteRead (chunked)
                if not chunk:
                    break
                got += len(chunk)
        except (http.client.IncompleteRead, ConnectionError):
            return  # the client sees the response was cut
        # Ended without an error: only a Content-Length it falls short of tells the client.
        assert announced is not None and got < int(announced), (
            f"a cut response ended as if complete: {got} of {size} bytes, Content-Length {announced}"
        )
        assert announced == str(size)
    finally:
        conn.close()


def test_upstream_errors_and_latency_in_the_metrics(env):
    before = scrape(env)
    key = [("Authorization", f"Bearer {env.key}")]
    for _ in range(3):
        assert send(env, f"/ok/{marker()}").status == 200
    assert send(env, f"/ok/{marker()}?up=status&code=503").status == 503
    assert send(env, "/down/x").status == 502
    assert send(env, "/garbage/x").status == 502
    assert send(env, "/reset/x").status == 502
    assert send(env, "/hang/x").status == 504
    assert send(env, "/ok/x", key=False).status == 401
    assert gw_request(env.server.port, "GET", "/ok/a%2fb", key).status == 400
    after = scrape(env)

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    req = "apikeyd_requests_total"
    assert delta(req, route="gateway", method="GET", status="200") == 3
    assert delta(req, route="gateway", method="GET", status="503") == 1
    assert delta(req, route="gateway", method="GET", status="502") == 3
    assert delta(req, route="gateway", method="GET", status="504") == 1
    assert delta(req, route="gateway", method="GET", status="401") == 1
    assert delta(req, route="gateway", method="GET", status="400") == 1
    # Every authenticated gateway request is a verification.
    assert delta("apikeyd_verify_total", outcome="valid") == 8
    assert delta("apikeyd_verify_total", outcome="missing_key") == 1
    # Latency to the response head, per route: the four answered exchanges.
    assert delta("apikeyd_upstream_duration_seconds_count", route="/ok") == 4
    assert delta("apikeyd_upstream_duration_seconds_bucket", route="/ok", le="+Inf") == 4
    assert delta("apikeyd_upstream_duration_seconds_sum", route="/ok") > 0
    # Failures, per route and reason.
    errors = "apikeyd_upstream_errors_total"
    assert delta(errors, route="/down", reason="connect") == 1
    assert delta(errors, route="/garbage", reason="bad_response") == 1
    assert delta(errors, route="/reset", reason="reset") == 1
    assert delta(errors, route="/hang", reason="timeout") == 1
    for route in ("/ok", "/down", "/garbage", "/reset", "/hang"):
        for reason in ("connect", "timeout", "bad_response", "reset"):
            expected = {("/down", "connect"), ("/garbage", "bad_response"), ("/reset", "reset"), ("/hang", "timeout")}
            assert delta(errors, route=route, reason=reason) == (1 if (route, reason) in expected else 0), (route, reason)


def test_failed_exchanges_are_logged_once_with_a_warning_and_no_key(env):
    """One access-log line per request, and one warning line per upstream failure naming the
    route, the upstream and the request (contract: `apikeyd: warning: route /api: upstream
    HOST:PORT: REASON (request ID)`)."""
    routes = env.routes
    cases = [("/down", f"/down/x?k={env.key}", 502), ("/garbage", "/garbage/y", 502), ("/hang", "/hang/z", 504),
             ("/reset", "/reset/w", 502)]  # fmt: skip
    for route, target, status in cases:
        r = send(env, target)
        assert r.status == status
        rid = r.headers["X-Request-Id"]
        authority = routes[route].split("://", 1)[1]

        def lines(rid=rid):
            found = [line for line in env.server.log_text().splitlines() if line.endswith(f" rid={rid}")]
            return found or None

        found = wait_until(lines, LOG_TIMEOUT, what=f"the log line of {target}")
        assert len(found) == 1 and f" {target.split('?')[0]} {status} " in found[0], found
        warnings = [line for line in env.server.log_text().splitlines() if "warning" in line and rid in line]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"apikeyd: warning: route {route}: upstream {authority}: "), warnings[0]
        assert warnings[0].endswith(f"({rid})") or warnings[0].endswith(f"(request {rid})"), warnings[0]
    # A response cut short after its head: a warning too.
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=15)
    try:
        r = send(env, f"/ok/{marker()}?up=cut&size=3000000", conn=conn)
    except (http.client.IncompleteRead, ConnectionError):
        r = None
    finally:
        conn.close()
    ok_authority = routes["/ok"].split("://", 1)[1]
    wait_until(lambda: [line for line in env.server.log_text().splitlines()
                        if line.startswith(f"apikeyd: warning: route /ok: upstream {ok_authority}: ")], LOG_TIMEOUT,
               what="the warning line of the response cut short")  # fmt: skip
    assert env.key not in env.server.log_text()


# --------------------------------------------------------------------------- a client that leaves


@pytest.fixture(scope="module")
def patient(backend, apikeyd_bin, tmp_path_factory):
    """A server that would wait a minute for an upstream's first byte, so that anything ended
    sooner was ended by the client's leaving, not by a timeout."""
    ups = {"hang": Upstream(mode="hang", name="hang"), "ok": Upstream(name="ok")}
    metrics_port = free_port()
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway-patient"))
    try:
        server = factory("--route", f"/hang={ups['hang'].url}", "--route", f"/ok={ups['ok'].url}",
                         "--metrics-listen", f"127.0.0.1:{metrics_port}", "--upstream-first-byte-timeout", 60)  # fmt: skip
        yield SimpleNamespace(server=server, up=ups, metrics_port=metrics_port, key=server.account.key)
    finally:
        factory.close_all()
        for u in ups.values():
            u.close()


def count_499(patient):
    return metric(scrape(patient), "apikeyd_requests_total", route="gateway", method="GET", status="499") or 0


def upstream_errors(patient):
    return sum(metric(scrape(patient), "apikeyd_upstream_errors_total", route=route, reason=reason) or 0
               for route in ("/hang", "/ok") for reason in ("connect", "timeout", "bad_response", "reset"))  # fmt: skip


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_that_leaves_frees_its_upstream_connection_at_once(patient, how):
    """A client that closes its connection (or resets it) while the upstream has not answered:
    apikeyd closes the upstream connection at once, not at the first-byte timeout (60 s here),
    and the request ends as 499, in the access log and the metrics; not an upstream error."""
    hang = patient.up["hang"]
    before, errors = count_499(patient), upstream_errors(patient)
    m = marker()
    s = socket.create_connection(("127.0.0.1", patient.server.port), timeout=RAW_TIMEOUT)
    try:
        s.sendall(http_request("GET", f"/hang/{m}", [("Authorization", f"Bearer {patient.key}")]))
        hang.wait(lambda u: u.matching(m), what="the request at the upstream")
        assert hang.open_count() >= 1
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()
    wait_until(lambda: hang.open_count() == 0, CLOSE_TIMEOUT, what="apikeyd to close the upstream connection")
    wait_until(lambda: count_499(patient) == before + 1, LOG_TIMEOUT, what="the 499 in the metrics")
    wait_until(lambda: [line for line in patient.server.log_text().splitlines() if f" /hang/{m} 499 " in line],
               LOG_TIMEOUT, what="the access log line of the abandoned request")  # fmt: skip
    assert upstream_errors(patient) == errors
    assert send(patient, f"/ok/{marker()}").status == 200


def test_a_half_closed_client_is_a_client_that_left(patient):
    """A FIN is all a server sees of a client that leaves, so a client that half-closes (shuts
    down its sending side) while the upstream works has left too: it reads the 499 in the API's
    error shape, and the upstream connection is closed (nginx ends such a request as 499 too)."""
    hang = patient.up["hang"]
    m = marker()
    with socket.create_connection(("127.0.0.1", patient.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(http_request("GET", f"/hang/{m}", [("Authorization", f"Bearer {patient.key}")]))
        hang.wait(lambda u: u.matching(m), what="the request at the upstream")
        s.shutdown(socket.SHUT_WR)
        raw = read_until_closed(s)
    response, _ = parse_response(raw)
    r = GwResponse(response.status_code, "", list(response.headers.items()), response.content)
    assert_upstream_error(r, 499, "client_closed_request")  # as docs/openapi.yaml's GatewayRoute has it
    wait_until(lambda: hang.open_count() == 0, CLOSE_TIMEOUT, what="apikeyd to close the upstream connection")


def test_a_request_sent_while_the_upstream_works_waits_its_turn(patient):
    """A client that sends its next request before the answer to the first (pipelining, in two
    writes): the first is answered, then the second, in order, each authenticated on its own;
    nothing is mistaken for the client leaving."""
    ok = patient.up["ok"]
    first, second = marker(), marker()
    auth = [("Authorization", f"Bearer {patient.key}")]
    with socket.create_connection(("127.0.0.1", patient.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(http_request("GET", f"/ok/{first}?up=hang&after=0.5", auth))
        ok.wait(lambda u: u.matching(first), what="the first request at the upstream")
        s.sendall(http_request("GET", f"/ok/{second}", auth + [("Connection", "close")]))
        raw = read_until_closed(s)
    r1, rest = parse_response(raw)
    r2, _ = parse_response(rest)
    assert r1.status_code == 200 and json.loads(r1.content)["target"] == f"/{first}?up=hang&after=0.5", raw[:300]
    assert r2.status_code == 200 and json.loads(r2.content)["target"] == f"/{second}", rest[:300]
    assert len(ok.matching(second)) == 1


def test_a_client_that_leaves_mid_body_stops_the_download(patient):
    """A client that reads the head of a large download and leaves: the upstream connection is
    closed and the upstream stops sending long before the body's end."""
    ok = patient.up["ok"]
    size = 512 * 1024 * 1024
    sent_before = ok.body_bytes_sent
    with socket.create_connection(("127.0.0.1", patient.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(http_request("GET", f"/ok/{marker()}?up=big&size={size}", [("Authorization", f"Bearer {patient.key}")]))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, head[:300]
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head[:300]
    wait_until(lambda: ok.open_count() == 0, CLOSE_TIMEOUT, what="apikeyd to close the upstream connection")
    assert ok.body_bytes_sent - sent_before < size // 4, ok.body_bytes_sent - sent_before
    assert send(patient, f"/ok/{marker()}").status == 200


# --------------------------------------------------------------------------- the connection pool


def test_upstream_connections_are_reused_then_closed_when_idle(env):
    pool = env.up["pool"]
    wait_until(lambda: pool.open_count() == 0, CLOSE_TIMEOUT, what="no connection to the pool upstream")
    conns_before = pool.connections
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=15)
    try:
        for _ in range(20):
            assert send(env, f"/pool/{marker()}", conn=conn).status == 200
    finally:
        conn.close()
    opened = pool.connections - conns_before
    assert 1 <= opened < 20, f"{opened} upstream connections for 20 requests: no keep-alive"
    wait_until(lambda: pool.open_count() == 0, CLOSE_TIMEOUT, what="apikeyd to close its idle upstream connections")


def test_a_pooled_connection_the_upstream_closed_is_not_an_error(env):
    pool = env.up["pool"]
    for _ in range(5):
        assert send(env, f"/pool/{marker()}").status == 200
        pool.wait(lambda u: u.idle, what="the upstream connection to be idle")
        closed = pool.close_idle()
        assert closed >= 1
        pool.wait(lambda u: not u.open, what="the upstream to have closed it")
        time.sleep(0.02)  # the FIN on its way over loopback
        m = marker()
        r = send(env, f"/pool/{m}")
        assert r.status == 200, f"the request after the upstream closed an idle connection: {r}"
        assert r.json()["target"] == f"/{m}"


def test_a_response_with_bytes_past_its_end_never_answers_another_request(env):
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=15)
    try:
        r = send(env, f"/ok/{marker()}?up=overflow", conn=conn)
        assert r.status == 200 and r.content == b"first"
        for _ in range(10):
            m = marker()
            r = send(env, f"/ok/{m}", conn=conn)
            assert SMUGGLED_BODY not in r.content, "the upstream's extra bytes answered another request"
            assert r.status == 200 and r.json()["target"] == f"/{m}", r
    finally:
        conn.close()


# --------------------------------------------------------------------------- framing / smuggling


def smuggled(key, mark):
    """A complete request to the route, as it would reach the upstream if smuggled."""
    return http_request("GET", f"/ok/smuggled-{mark}", [("Authorization", f"Bearer {key}")])


def cl_te(key, mark, te_first=False, te="Transfer-Encoding"):
    body = b"0\r\n\r\n" + smuggled(key, mark)
    framing = [("Content-Length", len(body)), (te, "chunked")]
    if te_first:
        framing.reverse()
    return http_request("POST", f"/ok/front-{mark}", [("Authorization", f"Bearer {key}"), *framing], body)


def two_cls(key, mark, first, second):
    body = smuggled(key, mark)
    lengths = {"body": len(body), "zero": 0, "more": len(body) + 5}
    return http_request("POST", f"/ok/front-{mark}",
                        [("Authorization", f"Bearer {key}"), ("Content-Length", lengths[first]),
                         ("Content-Length", lengths[second])], body)  # fmt: skip


FRAMING = {
    "cl-te": lambda k, m: cl_te(k, m),
    "te-cl": lambda k, m: cl_te(k, m, te_first=True),
    "cl-te-lowercase": lambda k, m: cl_te(k, m, te="transfer-encoding"),
    "two-content-lengths": lambda k, m: two_cls(k, m, "body", "zero"),
    "two-content-lengths-reversed": lambda k, m: two_cls(k, m, "zero", "body"),
    "two-content-lengths-larger": lambda k, m: two_cls(k, m, "body", "more"),
}


def assert_refused_and_closed(raw):
    """Everything the server sent before closing: nothing, or one 400 (h2o's or apikeyd's)."""
    if raw == b"":
        return
    response, rest = parse_response(raw)
    assert response.status_code == 400, f"expected 400 (or a closed connection), got {raw[:400]!r}"
    assert rest == b"", f"a second response followed the refusal: {rest[:300]!r}"


@pytest.mark.parametrize("name", sorted(FRAMING))
def test_framing_attack_on_a_route_reaches_no_upstream(env, name):
    m = marker()
    before = total(env)
    with socket.create_connection(("127.0.0.1", env.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(FRAMING[name](env.key, m))
        raw = read_until_closed(s)
    assert_refused_and_closed(raw)
    assert env.up["ok"].matching(m) == [], f"the upstream received {env.up['ok'].matching(m)}"
    assert total(env) == before
    assert send(env, f"/ok/{marker()}").status == 200  # still serving


@pytest.mark.parametrize("name", ["cl-te", "two-content-lengths"])
@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "after-the-answer"])
def test_framing_attack_behind_a_good_request_reaches_no_upstream(env, name, pipelined):
    m = marker()
    good_mark = marker()
    good = http_request("GET", f"/ok/{good_mark}", [("Authorization", f"Bearer {env.key}")])
    bad = FRAMING[name](env.key, m)
    with socket.create_connection(("127.0.0.1", env.server.port), timeout=RAW_TIMEOUT) as s:
        if pipelined:
            s.sendall(good + bad)
            raw = read_until_closed(s)
        else:
            s.sendall(good)
            first = b""
            while not (b"\r\n\r\n" in first and first.rstrip().endswith(b"}")):
                chunk = s.recv(65536)
                assert chunk, f"closed after the good request: {first[:300]!r}"
                first += chunk
            s.sendall(bad)
            raw = first + read_until_closed(s)
    response, rest = parse_response(raw)
    assert response.status_code == 200
    assert_refused_and_closed(rest)
    assert len(env.up["ok"].matching(good_mark)) == 1
    assert env.up["ok"].matching(m) == [], f"the upstream received {env.up['ok'].matching(m)}"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_request_inside_a_body_stays_a_body(env, framing):
    m = marker()
    inner = smuggled(env.key, m)
    if framing == "chunked":
        headers = [("Transfer-Encoding", "chunked")]
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
    else:
        headers, payload = [], inner
    front = marker()
    r = send(env, f"/ok/{front}", method="POST", headers=headers, body=payload)
    assert r.status == 200, r
    seen = env.up["ok"].matching(front)
    assert len(seen) == 1 and seen[0].body_head == inner and seen[0].body_len == len(inner)
    assert seen[0].header_all("Content-Length") == [str(len(inner))] and seen[0].header_all("Transfer-Encoding") == []
    # The request in the body never ran as one.
    assert env.up["ok"].matching(m) == [], env.up["ok"].matching(m)


def test_a_pipelined_request_is_authenticated_on_its_own(env):
    """Bytes after a request's body are the next request: it needs its own key."""
    m, front = marker(), marker()
    first = http_request("POST", f"/ok/{front}", [("Authorization", f"Bearer {env.key}"), ("Content-Length", 5)], b"hello")
    second = http_request("GET", f"/ok/smuggled-{m}", [("Connection", "close")])
    with socket.create_connection(("127.0.0.1", env.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(first + second)
        raw = read_until_closed(s)
    r1, rest = parse_response(raw)
    assert r1.status_code == 200
    r2, _ = parse_response(rest)
    assert r2.status_code == 401
    seen = env.up["ok"].matching(front)
    assert len(seen) == 1 and seen[0].body_head == b"hello"
    assert env.up["ok"].matching(m) == []


FOLDED = [b"X-Note: a\r\n X-Account-Id: 7", b"X-Note: a\r\n\tX-Key-Id: 7", b"X-Note: a\rX-Account-Id: 7",
          b"X-Note: a\nX-Account-Id: 7"]  # fmt: skip


@pytest.mark.parametrize("raw_header", FOLDED)
def test_header_folding_or_bare_cr_lf_never_reaches_the_upstream(env, raw_header):
    """A folded header line (obs-fold) or a bare CR / LF in a header: refused (400), or passed on
    as a well-formed header block (RFC 9112 5.2: obs-fold replaced by spaces) in which the only
    identity headers are apikeyd's. Never a line the upstream could parse differently."""
    m = marker()
    head = f"GET /ok/{m} HTTP/1.1\r\nHost: apikeyd\r\nConnection: close\r\nAuthorization: Bearer {env.key}\r\n".encode()
    req = head + raw_header + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", env.server.port), timeout=RAW_TIMEOUT) as s:
        s.sendall(req)  # no half-close: a client's FIN while the upstream works ends the exchange (499)
        raw = read_until_closed(s)
    for seen in env.up["ok"].matching(m):
        assert seen.bad is None, f"the upstream received a malformed head ({seen.bad}): {seen.raw_head!r}"
        assert seen.header_all("X-Account-Id") == [str(env.server.account.id)], seen.headers
        assert seen.header_all("X-Key-Id") == [str(env.server.account.primary_id)], seen.headers
    if raw:
        response, _ = parse_response(raw)
        assert response.status_code in (200, 400), raw[:300]
        folded = b"\r\n " in raw_header or b"\r\n\t" in raw_header
        if folded:  # apikeyd's own refusal, as documented for a gateway route
            assert response.status_code == 400, raw[:300]
            assert json.loads(response.content)["error"]["code"] == "bad_request", raw[:300]
