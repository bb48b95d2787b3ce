"""Scrape a worker's /metrics every second until SIGTERM, then print how many scrapes succeeded.

    python -m bench.scraper HOST:PORT

It runs as its own process, as a Prometheus server would, so that the measured
worker's CPU time holds serving the scrapes but not making them.
"""

from __future__ import annotations

import signal
import sys
import time
import urllib.request


def main() -> None:
    url = f"http://{sys.argv[1]}/metrics"
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    scrapes = 0
    while running:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
                scrapes += response.status == 200
        except OSError:
            pass
        deadline = time.monotonic() + 1.0
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
    print(scrapes, flush=True)


if __name__ == "__main__":
    main()
