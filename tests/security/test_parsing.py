"""Holes 3, 5 and 11: bodies and files are parsed within bounds, and bad ones are 4xx.

A 700-byte YAML alias bomb used to hang the server (4.35 GB, every request timing out); JSON
nested 254+ levels gave a 500 when stored; duplicate YAML keys were accepted (last wins); a
non-UTF-8 file crashed ``flowdapt apply`` with a traceback.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from flowdapt.cli.main import _register_commands, app
from tests.server.conftest import STAGES, squares_workflow

_register_commands()

YAML = {"content-type": "application/x-yaml"}


def billion_laughs(levels: int) -> str:
    """The classic bomb: each level is nine aliases of the one before, 9**levels strings in all."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    body = "\n".join(lines)
    return (
        "kind: workflow\nmetadata: {name: bomb}\n"
        f"spec:\n  stages: [{{name: s, target: {STAGES}.make}}]\n"
        "  extra:\n" + "\n".join("    " + line for line in body.splitlines()) + "\n"
    )


def config_doc(name: str, data) -> dict:
    return {"kind": "config", "metadata": {"name": name}, "spec": {"selector": {"type": "name", "value": "x"}, "data": data}}


def nested(depth: int):
    value = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize("levels", [6, 9])
def test_a_yaml_alias_bomb_is_refused_fast_and_the_server_keeps_answering(http, levels):
    body = billion_laughs(levels)
    assert len(body) < 1000
    answers: list[float] = []
    stop = threading.Event()

    def probe():  # another client, meanwhile: must keep being answered quickly
        with httpx.Client(base_url=str(http.base_url), timeout=10) as other:
            while not stop.is_set():
                t0 = time.perf_counter()
                assert other.get("/workflows/").status_code == 200
                answers.append(time.perf_counter() - t0)
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    while not answers and prober.is_alive():
        time.sleep(0.01)
    try:
        t0 = time.perf_counter()
        response = http.post("/workflows/", content=body, headers=YAML)
        elapsed = time.perf_counter() - t0
        time.sleep(0.05)
    finally:
        stop.set()
        prober.join()
    assert response.status_code == 400, response.text
    assert "api.max_document_nodes" in response.json()["detail"]
    assert elapsed < 1.0
    assert answers and max(answers) < 1.0
    assert http.get("/workflows/bomb").status_code == 404


def test_a_small_alias_expansion_is_still_fine(http):
    body = billion_laughs(2)  # 81 strings
    response = http.post("/workflows/", content=body, headers=YAML)
    assert response.status_code == 200, response.text


def test_a_recursive_alias_is_refused(http):
    body = "kind: config\nmetadata: {name: loop}\nspec:\n  selector: {type: name, value: x}\n  data: &d [*d]\n"
    response = http.post("/configs/", content=body, headers=YAML)
    assert response.status_code == 400, response.text
    assert http.get("/configs/loop").status_code == 404


@pytest.mark.parametrize("depth", [70, 254, 300, 2000])
def test_deeply_nested_json_is_a_400_and_nothing_is_stored(http, depth):
    inner = '{"k": ' * depth + '"leaf"' + "}" * depth  # built as text: json.dumps itself recurses
    body = json.dumps(config_doc("deep", "HOLE")).replace('"HOLE"', inner)
    response = http.post("/configs/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "api.max_document_depth" in detail
    if depth < 1000:  # past orjson's own limit the parser stops before there is a path
        assert "at spec.data.k.k" in detail, detail
    assert http.get("/configs/deep").status_code == 404
    assert http.get("/configs/").status_code == 200


def test_nesting_within_the_limit_is_stored(http):
    response = http.post("/configs/", json=config_doc("fine", nested(50)))
    assert response.status_code == 200, response.text
    assert http.get("/configs/fine").json()["spec"]["data"] == nested(50)


def test_deeply_nested_yaml_is_a_400(http):
    body = "kind: config\nmetadata: {name: deep}\nspec:\n  selector: {type: name, value: x}\n  data: " + "[" * 300 + "]" * 300 + "\n"
    response = http.post("/configs/", content=body, headers=YAML)
    assert response.status_code == 400, response.text


def test_duplicate_yaml_keys_are_a_400_naming_the_key(http):
    body = f"kind: workflow\nmetadata:\n  name: dup\n  name: other\nspec:\n  stages: [{{name: s, target: {STAGES}.make}}]\n"
    response = http.post("/workflows/", content=body, headers=YAML)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "duplicate key 'name'" in detail and "line 4" in detail
    assert http.get("/workflows/dup").status_code == 404 and http.get("/workflows/other").status_code == 404


def test_yaml_merge_keys_are_not_duplicates(http):
    body = (
        "kind: config\nmetadata: {name: merged}\nspec:\n  selector: {type: name, value: x}\n"
        "  data:\n    base: &b {a: 1, b: 2}\n    more: {<<: *b, b: 3}\n"
    )
    response = http.post("/configs/", content=body, headers=YAML)
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["data"]["more"] == {"a": 1, "b": 3}


def test_a_large_body_is_parsed_off_the_event_loop(http):
    big = config_doc("big", {f"k{i}": "x" * 100 for i in range(5000)})  # ~600 KB
    response = http.post("/configs/", json=big)
    assert response.status_code == 200, response.text
    assert len(http.get("/configs/big").json()["spec"]["data"]) == 5000


# -- the same limits for files given to the CLI ------------------------------------------------


def cli(live, *args):
    return CliRunner().invoke(app, list(args), env={"FLOWDAPT_SERVER": live.url})


def test_apply_of_a_non_utf8_file_is_exit_2_with_a_message(live, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("kind: config\nmetadata: {name: caf\xe9}\n".encode("latin-1"))
    result = cli(live, "apply", "-f", str(path))
    assert result.exit_code == 2, result.output
    assert "not a UTF-8 text file" in result.output and str(path) in result.output
    assert "Traceback" not in result.output


def test_apply_of_a_yaml_bomb_or_duplicate_keys_is_exit_2(live, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(9))
    result = cli(live, "apply", "-f", str(bomb))
    assert result.exit_code == 2 and "api.max_document_nodes" in result.output, result.output
    dup = tmp_path / "dup.yaml"
    dup.write_text(json.dumps(squares_workflow()).replace('"kind": "workflow"', '"kind": "workflow", "kind": "config"'))
    result = cli(live, "apply", "-f", str(dup))
    assert result.exit_code == 2 and "duplicate key 'kind'" in result.output, result.output
    with live.client() as http:
        assert http.get("/workflows/squares").status_code == 404
