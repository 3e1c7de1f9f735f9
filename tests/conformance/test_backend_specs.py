"""How the conformance suites are pointed at a backend: spec strings, placeholders, the registry,
and the command line of ``pytest --pyargs flowdapt.testing.conformance``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowdapt.errors import ConfigurationError
from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend, parse_backend_spec, unique_for


def test_name_alone_and_options_as_key_values():
    assert parse_backend_spec("document_stores", "sqlite") == Backend("document_stores", "sqlite", {})
    backend = parse_backend_spec(
        "executors", "ray:address=127.0.0.1:6379,cpus=2,log_to_driver=false,pip=[\"a\",\"b\"],resources={\"gpu\":1,\"x\":2}"
    )
    assert backend.name == "ray"
    assert backend.options == {
        "address": "127.0.0.1:6379",  # only the first colon separates name and options
        "cpus": 2,
        "log_to_driver": False,
        "pip": ["a", "b"],
        "resources": {"gpu": 1, "x": 2},
    }


def test_an_event_bus_by_name_or_by_url_with_options():
    by_name = parse_backend_spec("event_buses", "memory")
    assert by_name.name == "memory" and by_name.options == {} and by_name.settings_for("/x") == {"event_bus.url": "memory://"}
    by_url = parse_backend_spec("event_buses", "nats://user:pw@127.0.0.1:4222:prefix=t_{unique},ack_wait=2")
    assert by_url.name == "nats"
    assert by_url.options == {"prefix": "t_{unique}", "ack_wait": 2}
    assert by_url.settings == {"event_bus.url": "nats://user:pw@127.0.0.1:4222"}
    assert parse_backend_spec("event_buses", "NATS://h:4222").settings == {"event_bus.url": "NATS://h:4222"}
    assert parse_backend_spec("event_buses", 'nats://a:1,b:2:{"prefix": "p"}').options == {"prefix": "p"}
    assert parse_backend_spec("event_buses", "nats://a:1,b:2").settings == {"event_bus.url": "nats://a:1,b:2"}


def test_options_as_a_json_object():
    backend = parse_backend_spec("cluster_memory", 'dask:{"address": "tcp://h:8786", "prefix": "p,q"}')
    assert backend.options == {"address": "tcp://h:8786", "prefix": "p,q"}


@pytest.mark.parametrize(
    "spec, message",
    [("", "starts with the registered name"), (":x=1", "starts with the registered name"), ("ray:cpus", "key=value"),
     ("ray:[1]", "key=value")],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_backend_spec("executors", spec)


def test_placeholders_expand_per_test_and_agree_between_handles(tmp_path):
    backend = Backend("document_stores", "x", {"path": "{app_dir}/db.json", "schema": "t_{unique}", "n": 3})
    first, again = backend.options_for(tmp_path / "a"), backend.options_for(tmp_path / "a")
    other = backend.options_for(tmp_path / "b")
    assert first == again and first["path"] == f"{tmp_path}/a/db.json" and first["n"] == 3
    assert first["schema"] == "t_" + unique_for(tmp_path / "a") != other["schema"]
    assert unique_for(tmp_path).isalnum() and unique_for(tmp_path)[0].isalpha()


def test_backends_are_built_through_the_registry_with_its_options_model(tmp_path):
    sqlite = Backend("document_stores", "sqlite", {"path": "{app_dir}/x.db"}, plugins=tuple(BUILTIN_PLUGINS))
    assert sqlite.make(tmp_path).path == tmp_path / "x.db"
    assert sqlite.has_option("path") and not sqlite.has_option("max_size")
    wrong = Backend("document_stores", "sqlite", {"nonsense": 1}, plugins=tuple(BUILTIN_PLUGINS))
    with pytest.raises(ConfigurationError, match="nonsense"):
        wrong.make(tmp_path)
    with pytest.raises(Exception, match="no document store named 'nope'"):
        Backend("document_stores", "nope", plugins=tuple(BUILTIN_PLUGINS)).make(tmp_path)


def test_capabilities_come_from_the_backend_unless_overridden(tmp_path):
    memory = Backend("document_stores", "memory", plugins=tuple(BUILTIN_PLUGINS))
    sqlite = Backend("document_stores", "sqlite", plugins=tuple(BUILTIN_PLUGINS))
    assert memory.capability(memory.make(tmp_path), "shared") is False
    assert sqlite.capability(sqlite.make(tmp_path), "shared") is True
    forced = Backend("document_stores", "sqlite", plugins=tuple(BUILTIN_PLUGINS), capabilities={"shared": False})
    assert forced.capability(forced.make(tmp_path), "shared") is False


def test_the_shipped_suites_run_from_the_command_line(tmp_path):
    """Outside this repository's pytest config (strict asyncio mode, as in a plugin's checkout)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "flowdapt.testing.conformance", "-q", "-rs",
         "-p", "no:cacheprovider", "--flowdapt-store", "memory", "--flowdapt-cluster-memory", "memory",
         "--flowdapt-executor", "local:mode=thread,workers=2", "--flowdapt-event-bus", "memory://",
         "-k", "not processes"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert " failed" not in out and " error" not in out
    # What the backends say they cannot do (thread workers share the driver's memory).
    assert "memory is not persistent" in out and "one worker process" in out and "memory bus is not shared" in out
    passed = int(out.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 95, out[-2000:]  # all four suites ran (86 + 17 cases today)


def test_a_suite_without_its_option_says_which_to_pass(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "flowdapt.testing.conformance", "-q", "-rs",
         "-p", "no:cacheprovider", "-k", "test_map_over_previous_output or test_list_of_empty_kind"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no executor to test: pass --flowdapt-executor" in proc.stdout
    assert "no document store to test: pass --flowdapt-store" in proc.stdout
    assert "2 skipped" in proc.stdout


def test_a_bad_option_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "flowdapt.testing.conformance", "-q", "-p", "no:cacheprovider",
         "--flowdapt-store", "sqlite:path", "-k", "test_list_of_empty_kind"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "expected key=value" in proc.stdout + proc.stderr
