"""scripts/schema-registry's own bookkeeping, in a scratch state folder: status, a registry already
running on another port, and stop, which ends only the process its pid file names.

Starting the real registry is what the `schema_registry` fixture does for every other registry test.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REGISTRY_SCRIPT


def script(command: str, home, port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAMS_SCHEMA_REGISTRY_HOME": str(home), "STREAMS_SCHEMA_REGISTRY_PORT": str(port)}
    return subprocess.run([sys.executable, str(REGISTRY_SCRIPT), command], env=env, capture_output=True, text=True,
                          timeout=60)


def test_status_without_a_registry(tmp_path):
    done = script("status", tmp_path, 18999)
    assert done.returncode == 1 and done.stdout.strip() == "not running"


def test_a_registry_on_another_port_is_reported_not_restarted_and_stop_ends_it(tmp_path):
    jar = tmp_path / "dist" / "apicurio-registry-app-3.0.9-runner.jar"
    # A process whose command line is that of a registry started by the script on port 18998.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-Dquarkus.http.port=18998",
                                 "-jar", str(jar)])
    try:
        (tmp_path / "registry.pid").write_text(str(stand_in.pid))
        started = script("start", tmp_path, 18999)
        assert started.returncode == 1
        assert started.stderr.strip() == (
            f"a schema registry started by this script (pid {stand_in.pid}) listens on port 18998, not 18999: "
            "stop it first, or set STREAMS_SCHEMA_REGISTRY_PORT=18998")
        status = script("status", tmp_path, 18998)
        assert status.returncode == 1 and status.stdout.strip().startswith(f"pid {stand_in.pid} not answering")
        stopped = script("stop", tmp_path, 18999)
        assert stopped.stdout.strip() == f"stopped schema registry pid {stand_in.pid}"
        assert stand_in.wait(timeout=30) is not None
        assert not (tmp_path / "registry.pid").exists()
    finally:
        stand_in.kill()
        stand_in.wait()
