"""GET /metrics: Prometheus text fed by the Bot's own counters and reply log, behind a bearer
token; no number, message or sender hash anywhere in it; every gunicorn worker's figures summed."""

from __future__ import annotations

import concurrent.futures
import hashlib
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mbcsms import create_app
from mbcsms.config import ConfigError, Settings
from mbcsms.senders import sender_key
from tests.helpers import PATIENT, SECRET, app_env, post_signed
from tests.procfile_servers import SMS_SENDER, send, server_env, start, stop, wait_until_up

TOKEN = "metrics-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def value(text: str, series: str) -> float:
    """The value of one series (name and labels exactly as printed), 0 when absent."""
    for line in text.splitlines():
        name, _, number = line.rpartition(" ")
        if name == series:
            return float(number)
    return 0.0


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    return create_app(app_env(tmp_path, MBCSMS_METRICS_TOKEN=TOKEN)).test_client()


def test_metrics_refuse_without_the_token_or_with_a_wrong_one(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 401
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer ", TOKEN,
                   "Bearer tökén-0123456789abcdef"):
        response = client.get("/metrics", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert b"mbcsms_" not in response.data
    assert client.get("/metrics", headers=BEARER).status_code == 200


def test_metrics_are_not_found_when_no_token_is_set(tmp_path: Path) -> None:
    client = create_app(app_env(tmp_path)).test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=BEARER).status_code == 404


def test_the_token_is_checked_in_config(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"TWILIO_AUTH_TOKEN": "t" * 20, "MBCSMS_SECRET": SECRET}
    assert Settings.from_env(base).metrics_token is None
    assert Settings.from_env({**base, "MBCSMS_METRICS_TOKEN": f" {TOKEN} "}).metrics_token == TOKEN
    for bad in ("tooshort123", "has spaces in it 0123456789", "quote\"0123456789abcdef"):
        with pytest.raises(ConfigError, match="MBCSMS_METRICS_TOKEN") as error:
            Settings.from_env({**base, "MBCSMS_METRICS_TOKEN": bad})
        assert bad not in str(error.value)
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Settings.from_env({**base, "PROMETHEUS_MULTIPROC_DIR": "/no/such/directory"})


def test_metrics_count_replies_opt_changes_and_crises_without_a_number_or_hash(client: FlaskClient) -> None:
    before = client.get("/metrics", headers=BEARER).get_data(as_text=True)
    for body in ("HER2", "que es her2", "I want to kill myself", "STOP", "START", "MENU"):
        assert post_signed(client, body).status_code == 200
        assert client.get("/livez").status_code == 200  # timed: POST /sms alone
    text = client.get("/metrics", headers=BEARER).get_data(as_text=True)

    def grew(series: str) -> float:
        return value(text, series) - value(before, series)

    assert grew('mbcsms_replies_total{lang="en",topic="her2"}') == 1
    assert grew('mbcsms_replies_total{lang="es",topic="her2"}') == 1
    assert grew("mbcsms_crisis_replies_total") == 1
    assert grew("mbcsms_opt_outs_total") == 1 and grew("mbcsms_opt_ins_total") == 1
    assert grew("mbcsms_request_latency_seconds_count") == 6
    for name in ("mbcsms_store_failures_total", "mbcsms_opt_changes_not_recorded_total",
                 "mbcsms_replies_withheld_state_unknown_total", "mbcsms_store_outage_seconds_total"):
        assert f"\n{name} " in text
    digits = PATIENT.lstrip("+")
    assert digits not in text and digits[1:] not in text and digits[-7:] not in text
    hashed = sender_key(PATIENT, SECRET)
    assert hashed[:8] not in text and hashlib.sha256(PATIENT.encode()).hexdigest()[:8] not in text
    assert "kill" not in text and "HER2" not in text
    # Labels only from fixed sets: topic ids and language codes.
    labels = set(re.findall(r'(\w+)="([^"]*)"', text))
    assert {name for name, _ in labels} <= {"topic", "lang", "event", "le"}


def test_an_outage_is_counted(tmp_path: Path) -> None:
    client = create_app(app_env(tmp_path, MBCSMS_DB=str(tmp_path), MBCSMS_METRICS_TOKEN=TOKEN)).test_client()
    before = client.get("/metrics", headers=BEARER).get_data(as_text=True)
    post_signed(client, "HER2")  # the store cannot open: nobody can say whether they opted out
    text = client.get("/metrics", headers=BEARER).get_data(as_text=True)
    grew = {name: value(text, name) - value(before, name)
            for name in ("mbcsms_store_failures_total", "mbcsms_replies_withheld_state_unknown_total")}
    assert grew["mbcsms_replies_withheld_state_unknown_total"] == 1
    assert grew["mbcsms_store_failures_total"] >= 0  # the breaker may already be open from start-up


def test_the_gunicorn_config_makes_a_fresh_directory_when_none_is_set(tmp_path: Path) -> None:
    code = ("import os; os.environ.pop('PROMETHEUS_MULTIPROC_DIR', None); import mbcsms.gunicorn_config;"
            " d = os.environ['PROMETHEUS_MULTIPROC_DIR']; print(d, os.path.isdir(d), os.listdir(d))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["True", "[]"] and "mbcsms-metrics-" in out[0]
    code = "import os, mbcsms.gunicorn_config; print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**server_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).stdout
    assert kept.strip() == str(tmp_path)


def _metrics(url: str) -> str:
    request = urllib.request.Request(url + "/metrics", headers=BEARER)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _per_worker(directory: Path, series: str) -> dict[str, float]:
    """Each worker's own figure, read from its file of the multiprocess directory."""
    from prometheus_client.multiprocess import MultiProcessCollector

    figures = {}
    for path in directory.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            for sample in metric.samples:
                if sample.name == series:
                    figures[path.name] = figures.get(path.name, 0.0) + sample.value
    return figures


def test_the_procfile_servers_workers_add_up(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = server_env(tmp_path, MBCSMS_DB=str(tmp_path / "state.db"), DATABASE_URL="", WEB_CONCURRENCY="2",
                     MBCSMS_METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(directory), MBCSMS_RATE_LIMIT="1000")
    server = start(tmp_path, "metrics", env)
    try:
        wait_until_up(server)
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as _:
            pytest.fail("served without the token")
    except urllib.error.HTTPError as refused:
        assert refused.code == 401
    try:
        sent = 0
        senders = [f"+1555010{n:04d}" for n in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # until both workers have answered some
                sent += len(list(pool.map(lambda number: send(server, "HER2", number), senders)))
                figures = _per_worker(directory, "mbcsms_replies_total")
                if len([f for f in figures.values() if f > 0]) >= 2:
                    break
        text = _metrics(server.url)
    finally:
        stop(server)
    answering = {name: figure for name, figure in figures.items() if figure > 0}
    assert len(answering) >= 2, figures
    assert value(text, 'mbcsms_replies_total{lang="en",topic="her2"}') == sent == sum(figures.values())
    assert value(text, "mbcsms_request_latency_seconds_count") == sent
    for number in [SMS_SENDER, *senders]:
        assert number.lstrip("+") not in text and number.lstrip("+")[1:] not in text
