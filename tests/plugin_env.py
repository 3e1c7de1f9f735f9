"""Helpers for tests that build plugins and install them into throwaway virtual environments.

Nothing here touches the workspace environment: every install goes into a venv under a pytest
temporary directory, with the core built from this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "plugin-template"
CORE = ROOT / "core"


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        pytest.fail("uv is needed to build and install plugins in these tests (pip install uv)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the workspace's virtualenv or Flowdapt settings leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLOWDAPT__", "FLOWDAPT_SERVER", "FLOWDAPT_TOKEN", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT"))
    }
    env.update(extra)
    return env


def run(cmd: list, cwd: Path | None = None, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def render(output_dir: Path, **context: str) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(output_dir)))


def build_wheel(project: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    check(run([uv(), "build", "--wheel", "--out-dir", out, project]))
    wheels = sorted(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    assert wheels, f"uv build produced no wheel in {out}"
    return wheels[-1]


def make_venv(path: Path, *requirements: str | Path) -> Path:
    """A fresh venv holding ``requirements``; returns its bin dir."""
    check(run([uv(), "venv", "--quiet", "--python", sys.executable, path]))
    check(run([uv(), "pip", "install", "--quiet", "--python", path / "bin" / "python", *requirements]))
    return path / "bin"


def freeze(bin_dir: Path) -> str:
    return check(run([uv(), "pip", "freeze", "--python", bin_dir / "python"])).stdout


def write_project(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, str],
    entry_point: str | None,
    dependencies: list[str] | None = None,
) -> Path:
    """A minimal hatchling project ``name`` with the given package files (``pkg/mod.py`` -> text)
    and ``dependencies`` (default: ``["flowdapt"]``)."""
    package = name.replace("-", "_")
    directory.mkdir(parents=True, exist_ok=True)
    entry = f'\n[project.entry-points."flowdapt.plugins"]\n{entry_point} = "{package}"\n' if entry_point else ""
    (directory / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.11"
            dependencies = {json.dumps(["flowdapt"] if dependencies is None else dependencies)}

            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [tool.hatch.build.targets.wheel]
            packages = ["{package}"]
            """
        )
        + entry
    )
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``flowdapt run`` from a venv, in the background, stopped by :meth:`stop`."""

    def __init__(self, bin_dir: Path, app_dir: Path, token: str, **env: str):
        self.bin_dir = bin_dir
        self.app_dir = app_dir
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = app_dir / "server.log"
        app_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(bin_dir / "flowdapt"), "--app-dir", str(app_dir), "run", "--port", str(self.port)],
            env=clean_env(FLOWDAPT__API__TOKEN=token, **env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the server did not answer within {timeout}s:\n{self.log.read_text()}")

    def cli(self, *args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
        """``flowdapt`` of the server's venv, pointed at the server."""
        return run(
            [self.bin_dir / "flowdapt", "--app-dir", self.app_dir, *args],
            timeout=timeout,
            FLOWDAPT_SERVER=self.url,
            FLOWDAPT_TOKEN=self.token,
        )

    def get(self, path: str):
        import httpx

        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()
