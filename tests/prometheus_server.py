"""A real Prometheus server (Debian's `prometheus` package) for tests: loopback only, tmp storage, 1 s scrapes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tests.web_helpers import free_port, get

PROMETHEUS = shutil.which("prometheus")

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: streams
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
"""


@contextlib.asynccontextmanager
async def prometheus(targets: Sequence[str], folder: Path) -> AsyncIterator[str]:
    """Run Prometheus scraping the host:port targets; yields its base URL; stops it on exit."""
    assert PROMETHEUS, "prometheus is not installed (.ci/run installs Debian's prometheus package)"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(CONFIG.format(targets=", ".join(f'"{t}"' for t in targets)))
    address = f"127.0.0.1:{free_port()}"
    log = open(folder / "prometheus.log", "wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address={address}", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (folder / "prometheus.log").read_text()[-3000:]
            try:
                status, _, _ = await get(f"http://{address}/-/ready", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (folder / "prometheus.log").read_text()[-3000:]
            await asyncio.sleep(0.3)
        yield f"http://{address}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def query(base: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query through Prometheus's HTTP API."""
    from urllib.parse import quote

    status, body, _ = await get(f"{base}/api/v1/query?query={quote(promql)}")
    assert status == 200 and body["status"] == "success", body
    return body["data"]["result"]
