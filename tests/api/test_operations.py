"""Operating apikeyd (issue 14), black-box, on both backends: metrics, logs, configuration.

- Metrics: `--metrics-listen` serves Prometheus text on its own listener (never on the API's);
  the counters match the traffic the test sent; `promtool check metrics` (Debian's) passes; a
  real `prometheus` server scrapes it and its query API returns the same request count.
- Logs: `--log-format json` gives one JSON object per line on stderr, every line parsed by `jq`,
  requests with their fields, lifecycle messages too, and never a key or the secret.
- Configuration: every `serve` flag as an APIKEYD_* variable; flags win; a bad value in either
  is one line and exit 2.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from pathlib import Path

from conftest import Client, free_port, run_cli, wait_until

REPO = Path(__file__).resolve().parents[2]

VERIFY = "/v1/auth/verify"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JQ = shutil.which("jq") or "/usr/bin/jq"
SCRAPE_TIMEOUT = 30.0


def scrape(port):
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


def sample(text, name, **labels):
    """The value of the series `name{labels}` (labels matched exactly), or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.compile(r"^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$", re.M)
    m = pat.search(text)
    return float(m.group(1)) if m else None


@pytest.fixture
def metered(server_factory):
    port = free_port()
    server = server_factory("--metrics-listen", f"127.0.0.1:{port}", "--auth-failures", "0")
    server.metrics_port = port
    return server


def test_metrics_count_the_traffic_sent(metered):
    acme = metered.account
    created = acme.client.post(json={"name": "metered", "key_type": "sandbox"})
    assert created.status_code == 201
    before = scrape(metered.metrics_port)
    c = Client(metered, acme.key)
    for _ in range(7):
        assert c.request("GET", VERIFY).status_code == 204
    for _ in range(3):
        assert Client(metered, "ml_prod_" + "x" * 38).request("GET", VERIFY).status_code == 401
    assert c.request("GET", VERIFY, key=None).status_code == 401
    for _ in range(2):
        assert c.get().status_code == 200
    text = scrape(metered.metrics_port)

    def delta(name, **labels):
        return (sample(text, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert delta("apikeyd_requests_total", route="verify", method="GET", status="204") == 7
    assert delta("apikeyd_requests_total", route="verify", method="GET", status="401") == 4
    assert delta("apikeyd_requests_total", route="keys", method="GET", status="200") == 2
    assert delta("apikeyd_verify_total", outcome="valid") == 7
    assert delta("apikeyd_verify_total", outcome="invalid_key") == 3
    assert delta("apikeyd_verify_total", outcome="missing_key") == 1
    assert delta("apikeyd_request_duration_seconds_count", api="verify") == 11
    assert delta("apikeyd_request_duration_seconds_count", api="management") == 2
    assert sample(text, "apikeyd_keys") == 2
    assert sample(text, "apikeyd_accounts") == 1
    assert sample(text, "apikeyd_build_info", version=metered_version()) == 1
    assert sample(text, "apikeyd_write_duration_seconds_count") >= 1  # the POST above
    assert sample(text, "apikeyd_writer_queue_depth") == 0
    assert sample(text, "apikeyd_store_errors_total") == 0
    assert sample(text, "apikeyd_throttled_addresses") == 0


def test_connections_are_spread_evenly_over_the_loops(server_factory):
    """Keep-alive connections stay on the loop that took them, and which loop takes a connection
    is chance: apikeyd hands a new connection to the loop with the fewest when the one that took
    it has 2 more (contract: apikeyd_connections{loop}), so 4 loops serving 40 connections hold
    10 +- 2 each, and every connection is served."""
    port = free_port()
    server = server_factory("--metrics-listen", f"127.0.0.1:{port}", "--threads", "4")
    conns = []
    try:
        for _ in range(40):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            assert r.status == 200
            conns.append(c)
        counts = [sample(scrape(port), "apikeyd_connections", loop=str(i)) for i in range(4)]
        assert None not in counts and sum(counts) == 40, counts
        assert max(counts) - min(counts) <= 2, counts
        for c in conns:  # every connection still answers, wherever it was handed
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            assert r.status == 200
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: sum(sample(scrape(port), "apikeyd_connections", loop=str(i)) for i in range(4)) == 0, 10,
               what="the closed connections to leave the count")  # fmt: skip


def metered_version():
    p = run_cli("--version")
    return p.stdout.split()[1]


def test_promtool_checks_the_exposition(metered):
    Client(metered, metered.account.key).request("GET", VERIFY)
    text = scrape(metered.metrics_port)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_metrics_only_on_their_own_listener(metered):
    r = Client(metered).request("GET", "/metrics")
    assert r.status_code == 404
    assert requests.get(f"http://127.0.0.1:{metered.metrics_port}/", timeout=10).status_code == 404
    assert requests.post(f"http://127.0.0.1:{metered.metrics_port}/metrics", timeout=10).status_code == 405


def test_prometheus_scrapes_and_answers_the_count(metered, tmp_path):
    n = 13
    c = Client(metered, metered.account.key)
    for _ in range(n):
        assert c.request("GET", VERIFY).status_code == 204
    expected = sample(scrape(metered.metrics_port), "apikeyd_requests_total", route="verify", method="GET", status="204")
    assert expected == n
    web = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: apikeyd\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metered.metrics_port}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        api = f"http://127.0.0.1:{web}/api/v1"

        def scrapes():
            try:
                r = requests.get(f"{api}/query", params={"query": 'count_over_time(up{job="apikeyd"}[1m])'}, timeout=5)
            except requests.RequestException:
                return 0
            res = r.json()["data"]["result"] if r.status_code == 200 else []
            return float(res[0]["value"][1]) if res else 0

        wait_until(lambda: scrapes() >= 2, SCRAPE_TIMEOUT, interval=0.5, what="two scrapes by prometheus")
        r = requests.get(f"{api}/query",
                         params={"query": 'apikeyd_requests_total{route="verify",method="GET",status="204"}'}, timeout=5)  # fmt: skip
        assert r.status_code == 200, r.text
        result = r.json()["data"]["result"]
        assert len(result) == 1 and float(result[0]["value"][1]) == n, result
        # Every query of the example Grafana dashboard is valid PromQL that Prometheus evaluates.
        for expr in dashboard_queries():
            q = expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
            r = requests.get(f"{api}/query", params={"query": q}, timeout=5)
            assert r.status_code == 200 and r.json()["status"] == "success", (q, r.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def dashboard_queries():
    dash = json.loads((REPO / "contrib" / "grafana" / "apikeyd-dashboard.json").read_text())
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def test_contrib_rules_and_dashboard_use_real_metrics(metered):
    """The alert rules pass promtool's check and their unit tests; every metric the rules and the
    dashboard name is one apikeyd exposes."""
    rules = REPO / "contrib" / "prometheus"
    for args in (["check", "rules", "apikeyd-alerts.yml"], ["test", "rules", "apikeyd-alerts.test.yml"]):
        p = subprocess.run([PROMTOOL, *args], cwd=rules, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
    exposed = set(re.findall(r"^# TYPE (\S+) ", scrape(metered.metrics_port), re.M))
    exposed |= {"apikeyd_store_last_event_age_seconds", "apikeyd_store_resyncs_total"}  # PostgreSQL only
    named = set(re.findall(r"apikeyd_[a-z_]+", (rules / "apikeyd-alerts.yml").read_text() + " ".join(dashboard_queries())))
    base = {re.sub(r"_(bucket|sum|count)$", "", m) if m.endswith(("_bucket", "_sum", "_count")) else m for m in named}
    assert base - exposed == set(), f"not exposed: {base - exposed}"


# --------------------------------------------------------------------------- logs


def test_json_logs_parse_with_jq_and_hold_no_secret(server_factory):
    server = server_factory("--log-format", "json")
    acme = server.account
    made = acme.client.post(json={"name": "logged", "key_type": "production"})
    assert made.status_code == 201
    secret_key = made.body["api_key"]
    assert Client(server, secret_key).request("GET", VERIFY).status_code == 204
    assert Client(server, secret_key + "x").request("GET", VERIFY).status_code == 401
    assert Client(server, secret_key).request("GET", f"{VERIFY}?token={secret_key}").status_code == 204
    server.stop()
    raw = server.log_path.read_text(encoding="utf-8")
    lines = [line for line in raw.splitlines() if line]
    assert lines
    p = subprocess.run([JQ, "-c", "."], input=raw, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in lines]
    assert all({"time", "level", "msg"} <= set(o) for o in objs)
    msgs = [o["msg"] for o in objs]
    assert any(m.startswith("listening on ") for m in msgs)
    assert "SIGTERM received, shutting down" in msgs
    requests_ = [o for o in objs if o["msg"] == "request"]
    assert len(requests_) >= 4
    for o in requests_:
        assert set(o) == {"time", "level", "msg", "request_id", "method", "path", "status", "key_prefix", "duration_ms",
                          "client_ip"}, o  # fmt: skip
        assert "?" not in o["path"]  # never the query string
        assert o["client_ip"] == "127.0.0.1"
    verified = [o for o in requests_ if o["path"] == VERIFY and o["status"] == 204]
    assert verified and verified[0]["key_prefix"] == made.body["key_prefix"]
    # No key, no secret, no digest anywhere.
    assert secret_key not in raw and secret_key[:20] not in raw
    secret = open(server.secret_file or f"{server.db}.secret", "rb").read().strip()
    assert secret and secret.decode("latin-1") not in raw


def test_bad_log_format_exits_2(tmp_path):
    p = run_cli("serve", "--db", str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{free_port()}", "--log-format", "xml")
    assert p.returncode == 2 and p.stderr.strip() == "apikeyd serve: --log-format takes text or json", p.stderr


# --------------------------------------------------------------------------- configuration


def test_every_flag_has_its_variable_and_flags_win(server_factory, tmp_path):
    help_text = run_cli("serve", "--help").stdout
    flags = sorted(set(re.findall(r"^\s+--([a-z-]+)", help_text, re.M)) - {"help"})
    assert "rate-sync-ms" in flags and "metrics-listen" in flags
    # From the environment alone: a metrics listener, the JSON log.
    port = free_port()
    server = server_factory(start=False, env={"APIKEYD_METRICS_LISTEN": f"127.0.0.1:{port}", "APIKEYD_LOG_FORMAT": "json"})
    server.start()
    assert "apikeyd_build_info" in scrape(port)
    server.stop()
    assert json.loads(server.log_path.read_text().splitlines()[0])["msg"].startswith("listening on")
    # A flag wins over its variable.
    server.env["APIKEYD_LOG_FORMAT"] = "json"
    first = len(server.log_path.read_text().splitlines())
    server.start(extra_args=["--log-format", "text"])
    server.stop()
    second = server.log_path.read_text().splitlines()[first:]
    assert "apikeyd: SIGTERM received, shutting down" in second
    assert not any(line.startswith("{") for line in second), second  # text, all of it


@pytest.mark.parametrize("var,value", [("APIKEYD_THREADS", "many"), ("APIKEYD_MAX_CONNECTIONS", "0"),
                                       ("APIKEYD_LOG_FORMAT", "xml"), ("APIKEYD_REUSE_PORT", "maybe"),
                                       ("APIKEYD_RATE_SYNC_MS", "1"), ("APIKEYD_DASHBOARD", "perhaps")])  # fmt: skip
def test_bad_variable_is_one_line_and_exit_2(var, value, tmp_path):
    env = dict(os.environ, **{var: value})
    p = subprocess.run([os.environ["APIKEYD_BIN"], "serve", "--db", str(tmp_path / "x.db"), "--listen",
                        f"127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and var in lines[0], p.stderr
    assert not (tmp_path / "x.db").exists()


def test_store_lost_and_regained_are_logged_as_json(fault_cluster, fault_factory):
    """PostgreSQL stopped under a running instance: `store lost` once, then, when it is back,
    `store regained` and a `resync`; every line JSON, parsed by jq."""
    server = fault_factory("--log-format", "json", "--max-staleness", "0")

    def msgs():
        return [json.loads(line)["msg"] for line in server.log_path.read_text().splitlines() if line]

    fault_cluster.stop("fast")
    wait_until(lambda: any(m.startswith("store lost: not heard from for") for m in msgs()), 30,
               what="the store lost line")  # fmt: skip
    fault_cluster.start()
    wait_until(lambda: any(m.startswith("store regained") for m in msgs()), 30, what="the store regained line")
    wait_until(lambda: any(m.startswith("resync: keys reloaded") for m in msgs()), 30, what="the resync line")
    assert Client(server, server.account.key).request("GET", VERIFY).status_code == 204
    server.stop()
    assert sum(m.startswith("store lost") for m in msgs()) == 1  # said once, not every tick
    p = subprocess.run([JQ, "-c", "."], input=server.log_path.read_text(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
