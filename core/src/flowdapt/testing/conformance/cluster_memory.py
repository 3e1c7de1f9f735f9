"""The cluster-memory contract (``flowdapt.object_store.ClusterMemory``): every backend passes it.

put/get/delete/exists/keys/clear, namespaces, the missing-key error, values of every common
kind (numpy arrays, bytes, nested objects) including large ones, copies on put, TTL, the size
limit with eviction, stats, and concurrent threads and OS processes on the same keys.

Run it against any registered backend::

    pytest --pyargs flowdapt.testing.conformance --flowdapt-cluster-memory ray:address=auto,prefix={unique}

or subclass :class:`ClusterMemoryConformance` as ``Test...`` in a module that overrides the
``flowdapt_cluster_memory_backend`` fixture (docs/plugins.md). Each test builds the backend
through the plugin registry for a fresh app dir; the options must give an *empty, isolated*
memory per test (the default paths under ``{app_dir}``, or a ``{unique}`` prefix on a shared
cluster), and two backends built from the same options must see the same data.

What a backend lacks makes the suite skip, never weaken, a test: the backend object's
``shared_between_processes``, ``supports_ttl`` and ``exact_stats`` attributes (default True),
and the size-limit cases run when its options model has ``max_size`` and ``eviction``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowdapt.object_store import ClusterMemoryFullError
from flowdapt.testing.conformance._cluster_memory_worker import is_whole
from flowdapt.testing.conformance.backends import Backend

try:  # the suite's values are numpy arrays; without numpy its cases skip (the module still imports)
    import numpy as np
except ImportError:  # pragma: no cover - numpy is in every Flowdapt test environment
    np = None

#: The options that bound the bytes held and say what happens at the bound.
SIZE_LIMIT = "max_size"
EVICTION = "eviction"


def require_size_limit(backend: Backend) -> None:
    if not (backend.has_option(SIZE_LIMIT) and backend.has_option(EVICTION)):
        pytest.skip(f"{backend.test_id} has no {SIZE_LIMIT}/{EVICTION} options")


__all__ = ["ClusterMemoryConformance", "is_whole", "run_racers"]


def run_racers(backend: Backend, app_dir: Path, tmp: Path, *, processes: int, rounds: int, shared: int):
    """Start ``processes`` OS processes on the same memory, release them at once, collect reports."""
    sync = tmp / "sync"
    sync.mkdir()
    spec = backend.spec(app_dir)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowdapt.testing.conformance._cluster_memory_worker",
                spec,
                str(sync),
                str(i),
                str(rounds),
                str(shared),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    deadline = time.monotonic() + 120
    while not all((sync / f"ready-{i}").exists() for i in range(processes)):
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                raise AssertionError(f"racer exited early ({p.returncode}): {err[-2000:]}")
        assert time.monotonic() < deadline, "racers did not start"
        time.sleep(0.01)
    (sync / "go").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


class ClusterMemoryConformance:
    """The cluster-memory conformance cases; subclass it as ``Test...`` to collect them."""

    @pytest.fixture
    def backend(self, flowdapt_cluster_memory_backend) -> Backend:
        if np is None:
            pytest.skip("the cluster-memory conformance suite needs numpy")
        return flowdapt_cluster_memory_backend

    @pytest.fixture
    def app_dir(self, tmp_path) -> Path:
        path = tmp_path / "app"
        path.mkdir()
        return path

    @pytest.fixture
    def memory(self, backend, app_dir):
        instance = backend.make(app_dir)
        yield instance
        instance.close()

    # -- basic contract ---------------------------------------------------------------------------

    def test_put_get_roundtrip_of_common_values(self, memory):
        values = {
            "int": 42,
            "none": None,
            "text": "héllo",
            "list": [1, "two", 3.0, None],
            "dict": {"a": {"b": [1, 2]}, "c": (1, 2)},
            "bytes": b"\x00\x01binary\xff" * 10,
            "bytearray": bytearray(b"mutable"),
            "array": np.arange(1000, dtype=np.float64),
            "int32": np.arange(12, dtype=np.int32).reshape(3, 4),
            "fortran": np.asfortranarray(np.random.default_rng(0).random((50, 30))),
            "strided": np.arange(100)[::3],
            "nested": {"model": {"coef": np.ones(8), "name": "m"}, "arrays": [np.zeros(3), np.ones(2)]},
        }
        for key, value in values.items():
            memory.put(key, value)
        for key, value in values.items():
            got = memory.get(key)
            assert type(got) is type(value), key
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got, value)
                assert got.dtype == value.dtype and got.shape == value.shape
            elif key == "nested":
                np.testing.assert_array_equal(got["model"]["coef"], value["model"]["coef"])
                assert got["model"]["name"] == "m"
                assert [a.tolist() for a in got["arrays"]] == [[0, 0, 0], [1, 1]]
            else:
                assert got == value, key

    def test_missing_key_raises_key_error(self, memory):
        with pytest.raises(KeyError):
            memory.get("never-put")
        memory.put("present", 1)
        with pytest.raises(KeyError):
            memory.get("present", namespace="elsewhere")

    def test_overwrite_replaces_the_value(self, memory):
        memory.put("k", {"v": 1})
        memory.put("k", {"v": 2})
        assert memory.get("k") == {"v": 2}
        assert memory.keys() == ["k"]

    def test_delete_and_exists(self, memory):
        assert memory.exists("k") is False
        memory.put("k", "v")
        assert memory.exists("k") is True
        assert memory.delete("k") is True
        assert memory.exists("k") is False
        assert memory.delete("k") is False
        with pytest.raises(KeyError):
            memory.get("k")

    def test_namespaces_are_isolated(self, memory):
        memory.put("same", "in-a", namespace="a")
        memory.put("same", "in-b", namespace="b")
        memory.put("only-b", 2, namespace="b")
        assert memory.get("same", namespace="a") == "in-a"
        assert memory.get("same", namespace="b") == "in-b"
        assert sorted(memory.keys("a")) == ["same"]
        assert sorted(memory.keys("b")) == ["only-b", "same"]
        assert memory.exists("only-b", namespace="a") is False
        memory.delete("same", namespace="a")
        assert memory.get("same", namespace="b") == "in-b"

    def test_namespace_prefixes_do_not_leak(self, memory):
        # "ab" must not list keys of "a" and vice versa, whatever the key encoding.
        memory.put("x", 1, namespace="a")
        memory.put("y", 2, namespace="ab")
        assert memory.keys("a") == ["x"]
        assert memory.keys("ab") == ["y"]
        memory.clear("a")
        assert memory.keys("ab") == ["y"]

    def test_clear_one_namespace_or_all(self, memory):
        for ns in ("a", "b"):
            for i in range(5):
                memory.put(f"k{i}", i, namespace=ns)
        memory.clear("a")
        assert memory.keys("a") == []
        assert sorted(memory.keys("b")) == [f"k{i}" for i in range(5)]
        memory.clear()
        assert memory.keys("b") == []
        memory.put("after-clear", 1, namespace="b")
        assert memory.get("after-clear", namespace="b") == 1

    def test_unusual_keys(self, memory):
        keys = ["model/BTC-USD", "a:b:c", "ünïcode", "with space", "dots.and-dashes_1", "x" * 200]
        for i, key in enumerate(keys):
            memory.put(key, i, namespace="ns/with:chars")
        for i, key in enumerate(keys):
            assert memory.get(key, namespace="ns/with:chars") == i
        assert sorted(memory.keys("ns/with:chars")) == sorted(keys)

    def test_invalid_keys_are_refused(self, memory):
        for bad in ("", None, 5, "nul\x00inside"):
            with pytest.raises((ValueError, TypeError)):
                memory.put(bad, 1)
        with pytest.raises((ValueError, TypeError)):
            memory.put("k", 1, namespace="")

    def test_values_are_copies(self, memory):
        value = {"list": [1, 2, 3], "array": np.zeros(4)}
        memory.put("k", value)
        value["list"].append(4)
        value["array"][0] = 99
        got = memory.get("k")
        assert got["list"] == [1, 2, 3]
        assert got["array"][0] == 0
        got["list"].append(5)
        assert memory.get("k")["list"] == [1, 2, 3]

    def test_large_values(self, memory):
        big = np.random.default_rng(1).random(8 * 1024 * 1024 // 8 * 8)  # 64 MiB
        memory.put("big", big)
        got = memory.get("big")
        np.testing.assert_array_equal(got, big)
        blob = bytes(range(256)) * (16 * 1024 * 4)  # 16 MiB of bytes
        memory.put("blob", blob)
        assert memory.get("blob") == blob
        memory.delete("big")
        assert not memory.exists("big")

    def test_a_second_handle_sees_the_same_data(self, backend, app_dir, memory):
        memory.put("k", [1, 2])
        if not backend.capability(memory, "shared_between_processes"):
            return  # process-local backends share nothing by design
        other = backend.make(app_dir)
        try:
            assert other.get("k") == [1, 2]
            other.put("from-other", 3)
            assert memory.get("from-other") == 3
        finally:
            other.close()

    def test_stats(self, backend, memory):
        memory.put("a", b"x" * 1000)
        memory.put("b", b"y" * 1000, namespace="other")
        stats = memory.stats()
        assert isinstance(stats, dict)
        if backend.capability(memory, "exact_stats"):
            assert stats["keys"] == 2
            assert stats["bytes"] >= 2000
            assert stats["evictions"] == 0
            memory.delete("a")
            assert memory.stats()["keys"] == 1

    # -- ttl and size limit --------------------------------------------------------------------------

    def test_ttl_expires_values(self, backend, memory):
        if not backend.capability(memory, "supports_ttl"):
            pytest.skip(f"{backend.name} has no per-key TTL")
        memory.put("short", 1, ttl=0.3)
        memory.put("long", 2)
        assert memory.get("short") == 1
        assert "short" in memory.keys()
        time.sleep(0.5)
        assert memory.exists("short") is False
        with pytest.raises(KeyError):
            memory.get("short")
        assert memory.keys() == ["long"]

    def test_size_limit_with_eviction_off_is_a_clear_error(self, backend, app_dir):
        require_size_limit(backend)
        memory = backend.make(app_dir, **{SIZE_LIMIT: 1 << 20, "eviction": "none"})
        try:
            chunk = np.ones(100_000, dtype=np.uint8)  # ~100 KB
            stored = 0
            with pytest.raises(ClusterMemoryFullError) as info:
                for i in range(20):
                    memory.put(f"k{i}", chunk)
                    stored += 1
            assert 5 <= stored < 11
            message = str(info.value)
            assert "full" in message and "max_size" in message and f"k{stored}" in message
            # Nothing stored was harmed, and freeing room makes the next put succeed.
            for i in range(stored):
                np.testing.assert_array_equal(memory.get(f"k{i}"), chunk)
            memory.delete("k0")
            memory.put(f"k{stored}", chunk)
            assert memory.exists(f"k{stored}")
        finally:
            memory.close()

    def test_size_limit_with_lru_eviction_keeps_accepting(self, backend, app_dir):
        require_size_limit(backend)
        memory = backend.make(app_dir, **{SIZE_LIMIT: 1 << 20, "eviction": "lru"})
        try:
            chunk = np.ones(100_000, dtype=np.uint8)
            for i in range(40):
                memory.put(f"k{i}", chunk)
            present = memory.keys()
            assert "k39" in present and "k0" not in present
            assert 5 <= len(present) <= 10
            if backend.capability(memory, "exact_stats"):
                stats = memory.stats()
                assert stats["bytes"] <= 1 << 20
                assert stats["evictions"] == 40 - len(present)
            # A value larger than the whole limit is refused clearly, and nothing is lost for it.
            with pytest.raises(ClusterMemoryFullError):
                memory.put("huge", np.ones(2 << 20, dtype=np.uint8))
            assert sorted(memory.keys()) == sorted(present)
            memory.put("after", chunk)
            assert memory.exists("after")
        finally:
            memory.close()

    # -- concurrency -----------------------------------------------------------------------------------

    def test_concurrent_threads_on_the_same_keys(self, memory):
        errors: list[str] = []

        def worker(index: int) -> None:
            try:
                for round_ in range(50):
                    memory.put(f"own-{index}-{round_}", {"i": index, "r": round_, "a": np.full(64, index)})
                    memory.put("shared", {"i": index, "a": np.full(256, index)})
                    got = memory.get("shared")
                    if not np.all(got["a"] == got["i"]):
                        errors.append(f"torn shared value {got['i']}")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for index in range(8):
            for round_ in range(50):
                got = memory.get(f"own-{index}-{round_}")
                assert got["i"] == index and got["r"] == round_

    def test_concurrent_processes_on_the_same_keys(self, backend, app_dir, tmp_path, memory):
        if not backend.capability(memory, "shared_between_processes"):
            pytest.skip(f"{backend.name} memory is per process")
        processes, rounds, shared = 4, 40, 5
        reports = run_racers(backend, app_dir, tmp_path, processes=processes, rounds=rounds, shared=shared)
        for report in reports:
            assert report["errors"] == []
            assert report["torn"] == []
            assert report["reads"] == rounds * (shared + 1)
        # No lost writes: every process's own keys are all there, whole and right.

        keys = set(memory.keys("race"))
        for index in range(processes):
            for round_ in range(rounds):
                key = f"w{index}-{round_}"
                assert key in keys
                value = memory.get(key, namespace="race")
                assert is_whole(value) and value["writer"] == index and value["round"] == round_
        # The last write to a shared key is some process's last round.
        for j in range(shared):
            value = memory.get(f"shared-{j}", namespace="race")
            assert is_whole(value) and value["round"] == rounds - 1
