"""StreamsConfig: validation names the setting, one precedence rule, broker URLs, and state paths that stay home."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import timedelta

import pytest

from streams import App
from streams.config import Brokers, StreamsConfig
from tests.process_helpers import REPO


@pytest.mark.parametrize(("settings", "named"), [
    ({"commit_interval": -5}, "commit_interval"),
    ({"commit_interval": 0}, "commit_interval"),
    ({"poll_max_records": -1}, "poll_max_records"),
    ({"poll_max_records": 0}, "poll_max_records"),
    ({"num_standby_replicas": -1}, "num_standby_replicas"),
    ({"num_standby_replicas": 1.5}, "num_standby_replicas"),
    ({"max_task_idle": -0.1}, "max_task_idle"),
    ({"processing_guarantee": "exactly-once"}, "processing_guarantee"),
    ({"on_error": "ignore"}, "on_error"),
    ({"brokers": "memory:/typo"}, "brokers"),
    ({"brokers": "localhost"}, "brokers"),
    ({"brokers": "host:99999"}, "brokers"),
    ({"brokers": "zookeeper://h:2181"}, "brokers"),
    ({"brokers": "local://"}, "brokers"),
    ({"security_protocol": "TLS"}, "security_protocol"),
    ({"security_protocol": "SASL_PLAINTEXT"}, "sasl_mechanism"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "sasl_plain_username"),
    ({"sasl_mechanism": "MD5"}, "sasl_mechanism"),
    ({"ssl_context": "yes"}, "ssl_context"),
    ({"producer_config": ["acks", "all"]}, "producer_config"),
])
def test_bad_values_name_the_setting(settings, named, monkeypatch):
    monkeypatch.delenv("STREAMS_BROKERS", raising=False)  # the environment would override a bad argument
    with pytest.raises(ValueError, match=rf"^{named}: "):
        App("valid-app", **settings)


@pytest.mark.parametrize("app_id", ["", ".", "..", "/tmp/x", "../up", "a b", "a/b", "ü"])
def test_app_id_must_be_a_plain_name(app_id):
    with pytest.raises(ValueError, match="^app_id: "):
        App(app_id)


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="^comit_interval: not a setting"):
        StreamsConfig.build("a", {"comit_interval": 1})


@pytest.mark.parametrize(("text", "scheme", "url"), [
    ("127.0.0.1:9092", "kafka", "127.0.0.1:9092"),
    ("kafka://a:1,b:2", "kafka", "a:1,b:2"),
    (" h1:9092 , h2:9093 ", "kafka", "h1:9092,h2:9093"),
    ("[::1]:9092", "kafka", "[::1]:9092"),
    ("memory://", "memory", "memory://"),
    ("memory://shop", "memory", "memory://shop"),
    ("local://.broker", "local", "local://.broker"),
])
def test_broker_urls_parse_by_scheme(text, scheme, url):
    brokers = Brokers.parse(text)
    assert (brokers.scheme, brokers.url, brokers.embedded) == (scheme, url, scheme != "kafka")


def test_one_precedence_rule_for_every_setting(tmp_path):
    env = {"STREAMS_BROKERS": "memory://from-env", "STREAMS_STATE_DIR": str(tmp_path / "env"),
           "STREAMS_COMMIT_INTERVAL": "2.5", "STREAMS_POLL_MAX_RECORDS": "7"}
    given = {"brokers": "h:1", "state_dir": tmp_path / "arg", "commit_interval": 1, "poll_max_records": 9,
             "num_standby_replicas": 1}
    config = StreamsConfig.build("a", given, env)
    # the environment beats arguments, arguments beat defaults
    assert config.brokers.url == "memory://from-env"
    assert config.state_dir == tmp_path / "env"
    assert (config.commit_interval, config.poll_max_records) == (2.5, 7)
    assert config.num_standby_replicas == 1
    assert StreamsConfig.build("a", {}, {}).poll_max_records == 10_000
    # command-line flags (configure) beat the environment
    assert config.with_overrides(brokers="h:2").brokers.url == "h:2"


def test_bad_environment_values_name_the_setting():
    with pytest.raises(ValueError, match="^poll_max_records: STREAMS_POLL_MAX_RECORDS='many'"):
        StreamsConfig.build("a", {}, {"STREAMS_POLL_MAX_RECORDS": "many"})
    with pytest.raises(ValueError, match="^commit_interval: "):
        StreamsConfig.build("a", {}, {"STREAMS_COMMIT_INTERVAL": "-1"})


def test_configure_revalidates():
    app = App("a", brokers="memory://")
    app.configure(commit_interval=timedelta(milliseconds=250))
    assert app.config.commit_interval == 0.25
    with pytest.raises(ValueError, match="^brokers: "):
        app.configure(brokers="memory:/oops")


def test_exactly_once_commits_more_often_by_default():
    assert StreamsConfig("a", processing_guarantee="exactly_once").commit_interval == 0.1
    assert StreamsConfig("a").commit_interval == 1.0


def test_state_paths_never_leave_the_state_dir(tmp_path):
    config = StreamsConfig("shop", state_dir=tmp_path)
    assert config.state_path() == (tmp_path / "shop").resolve()
    assert config.state_path("0_1", "counts") == (tmp_path / "shop" / "0_1" / "counts").resolve()
    for parts in (("..",), ("..", "other"), ("/etc",), ("0_1", "../../x")):
        with pytest.raises(ValueError, match="^state_dir: "):
            config.state_path(*parts)


async def test_security_settings_reach_every_kafka_client_admin_included():
    context = ssl.create_default_context()
    app = App("secure", brokers="h:9093", security_protocol="SASL_SSL", ssl_context=context,
              sasl_mechanism="PLAIN", sasl_plain_username="u", sasl_plain_password="s3cret-pw")
    transport = app.transport()
    admin = transport.admin()
    client = admin._admin._client
    assert (client._security_protocol, client._sasl_mechanism, client._ssl_context) == ("SASL_SSL", "PLAIN", context)
    producer = transport.producer()
    assert producer._producer.client._security_protocol == "SASL_SSL"
    await producer._producer.stop()
    assert "s3cret-pw" not in repr(app.config)


def test_replay_rebuild_and_reset_refuse_bad_app_ids_before_touching_disk(tmp_path):
    """The probe: App('..') once made `streams rebuild` delete the project's folder."""
    keep = tmp_path / "project"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    (tmp_path / "bad_app.py").write_text('from streams import App\napp = App("..", state_dir="state")\n')
    result = subprocess.run([sys.executable, "-m", "streams", "rebuild", "bad_app:app"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "app_id" in result.stderr
    assert (keep / "precious.txt").exists()
