"""aiohttp is loaded when the HTTP server starts, never by importing the CLI: `bridge --help` stays quick."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    code += "\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(result.stdout.split())


def test_importing_the_cli_and_the_http_module_does_not_load_aiohttp() -> None:
    loaded = _modules_after("import bridge.cli.main, bridge.service.http")

    assert "bridge.service.http" in loaded
    assert "aiohttp" not in loaded


def test_starting_the_server_loads_it() -> None:
    code = """
import asyncio
from bridge.service.http import Health, HttpServer
from bridge.service.telemetry import Telemetry

async def serve_once() -> None:
    async with HttpServer("127.0.0.1", 0, Health(), Telemetry()):
        pass

asyncio.run(serve_once())
"""
    assert "aiohttp" in _modules_after(code)
