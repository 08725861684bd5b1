"""The flags the seeds' Deployments pass to their managers, accepted by `roadie run` with the
meaning controller-runtime gives them: `--metrics-bind-address`, `--health-probe-bind-address`,
`--leader-elect`, `--metrics-secure`, `--enable-http2`, and the Orchestra seed's `KOPF_LOG_LEVEL`.

A manifest written for the original operator must run Roadie unchanged: a flag refused stops the
pod, and one read differently (`:8443` taken for a host, `0` for port zero rather than "off")
serves metrics where nothing scrapes them. `roadie run` is invoked with the operator itself
replaced, so what reaches it is the settings the flags made.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from roadie import operator, settings
from roadie.cli.main import app

runner = CliRunner()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[settings.Settings]:
    seen: list[settings.Settings] = []
    monkeypatch.setattr(operator, "run", seen.append)
    for key in ("ROADIE_OPERATOR_LOG_LEVEL", "KOPF_LOG_LEVEL", "ROADIE_OPERATOR_LEADER_ELECT"):
        monkeypatch.delenv(key, raising=False)
    return seen


def run(started: list[settings.Settings], *args: str) -> settings.OperatorSettings:
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    return started[-1].operator


def test_the_observatory_seeds_flags_as_its_deployment_passes_them(started: list[settings.Settings]) -> None:
    op = run(
        started,
        "--metrics-bind-address=:8443",
        "--metrics-secure",
        "--health-probe-bind-address=:8081",
        "--leader-elect",
    )
    assert (op.metrics_host, op.metrics_port) == ("", 8443)
    assert (op.health_host, op.health_port) == ("", 8081)
    assert op.metrics_secure and op.leader_elect and not op.enable_http2


def test_defaults_keep_one_replica_and_plain_metrics(started: list[settings.Settings]) -> None:
    op = run(started)
    assert not op.leader_elect and not op.metrics_secure and not op.enable_http2
    assert (op.host, op.metrics_port, op.health_port) == ("0.0.0.0", 8080, 8081)


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        (":8080", "", 8080),
        ("127.0.0.1:9090", "127.0.0.1", 9090),
        ("[::1]:8443", "::1", 8443),
        ("0", "", 0),
        ("localhost:8080", "localhost", 8080),
    ],
)
def test_bind_addresses_as_controller_runtime_reads_them(
    started: list[settings.Settings], address: str, host: str, port: int
) -> None:
    op = run(started, "--metrics-bind-address", address, "--health-probe-bind-address", address)
    assert (op.metrics_host, op.metrics_port) == (host, port)
    assert (op.health_host, op.health_port) == (host, port)


@pytest.mark.parametrize("address", ["8080", "::1:8080", "host:http", ":99999", "127.0.0.1:"])
def test_a_malformed_bind_address_is_refused_naming_the_flag(started: list[settings.Settings], address: str) -> None:
    result = runner.invoke(app, ["run", "--metrics-bind-address", address])
    assert result.exit_code != 0
    assert "--metrics-bind-address" in result.output
    assert started == []


def test_the_new_flags_set_what_the_old_ports_set(started: list[settings.Settings]) -> None:
    old = run(started, "--metrics-port", "9100", "--health-port", "9101")
    assert (old.metrics_port, old.health_port) == (9100, 9101)
    both = run(started, "--metrics-port", "9100", "--metrics-bind-address", "127.0.0.1:9200")
    assert (both.metrics_host, both.metrics_port) == ("127.0.0.1", 9200)  # the bind address wins


def test_the_environment_can_turn_each_on_and_a_flag_back_off(
    started: list[settings.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROADIE_OPERATOR_LEADER_ELECT", "true")
    monkeypatch.setenv("ROADIE_OPERATOR_METRICS_SECURE", "true")
    op = run(started)
    assert op.leader_elect and op.metrics_secure
    op = run(started, "--no-leader-elect", "--no-metrics-secure")
    assert not op.leader_elect and not op.metrics_secure


def test_enable_http2_and_a_certificate_folder_are_accepted(started: list[settings.Settings]) -> None:
    op = run(started, "--metrics-secure", "--enable-http2", "--metrics-cert-dir", "/etc/roadie/metrics-tls")
    assert op.enable_http2 and op.metrics_cert_dir == "/etc/roadie/metrics-tls"


def test_kopf_log_level_is_read_when_roadies_own_is_unset(
    started: list[settings.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOPF_LOG_LEVEL", "DEBUG")
    assert run(started).log_level == "DEBUG"
    monkeypatch.setenv("ROADIE_OPERATOR_LOG_LEVEL", "WARNING")
    assert run(started).log_level == "WARNING"
    assert run(started, "--log-level", "error").log_level == "error"


def test_an_unknown_log_level_is_refused(started: list[settings.Settings]) -> None:
    result = runner.invoke(app, ["run", "--log-level", "chatty"])
    assert result.exit_code != 0 and "--log-level" in result.output


def test_kopf_log_level_in_settings_alone() -> None:
    assert settings.load(env={"KOPF_LOG_LEVEL": "WARNING"}).operator.log_level == "WARNING"
    both = {"KOPF_LOG_LEVEL": "WARNING", "ROADIE_OPERATOR_LOG_LEVEL": "DEBUG"}
    assert settings.load(env=both).operator.log_level == "DEBUG"
    assert settings.load(env={"KOPF_LOG_LEVEL": ""}).operator.log_level == "INFO"
