"""Headless Chromium (Debian's `chromium`) for tests that look at a page as a person would."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def chromium(url: str, profile: Path, *action: str, budget_ms: int = 8000, timeout: float = 90) -> bytes:
    """Run one headless action (--dump-dom, --screenshot=PATH) on the page after `budget_ms` of virtual time.

    Virtual time runs the page's timers fast but waits for its network requests,
    so the page's refreshes really reach the server.
    """
    assert CHROMIUM, "chromium is not installed (.ci/run installs Debian's chromium package)"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--window-size=1400,1000",
        *action, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout
