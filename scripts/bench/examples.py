"""The three example plugins at full size, beside the same work as a plain Python loop and as plain Ray.

    uv run --frozen python scripts/bench/examples.py [--only nowcast scraper ask] [--backends local ray]
        [--cities 1000] [--pages 2000] [--fanout 200] [--cpus 2]

In one run, on one machine:

- **nowcast**: ``nowcast-create-features`` + ``nowcast-train`` + ``nowcast-predict`` for 1,000 cities x 3
  targets (30 days of hourly history, 48 held-out hours, 3,000 ridge models, the two PNG plots);
- **scraper**: ``scraper-crawl`` of a generated 2,000-article site served on 127.0.0.1 (crawl, fetch,
  extract, summarize, enrich, embed with all-MiniLM-L6-v2, upsert into sqlite-vec), then a re-crawl
  after 20 articles changed and 20 were added;
- **ask**: one ``ask`` run that fans out to 200 threads (fetch, summarize, enrich, embed, store) and
  returns the structured summaries: the latency of one call.

Flowdapt runs them through ``execute_workflow_async`` on a started executor: Local (process pool,
``--cpus`` workers) and Ray (a local instance with ``--cpus`` CPUs), both with LMDB cluster memory
(the default on one machine; ``--cluster-memory native`` gives Ray its own object store). The
baselines share the plugins' per-item functions (scripts/bench/examples_bench_stages.py): a plain
loop in one process, and plain Ray (``ray.get`` of one task per chunk of items, ``--cpus`` x 4
chunks, data passed as task arguments). Ratios: Flowdapt / loop, and Flowdapt on Ray / plain Ray.
Each figure is one run after a small warm-up run (worker imports, model load): these workloads take
seconds to minutes, so on a shared machine the noise is whatever the other load does; rerun to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import examples_bench_stages as chunks_mod  # noqa: E402
from _harness import fmt_seconds, print_table  # noqa: E402

NOWCAST_CFG = {"history_hours": 720, "test_hours": 48, "horizon": 1, "ridge_alpha": 1.0, "seed": 7, "plot_cities": 3}


def chunked(items: list, n_chunks: int) -> list[list]:
    size = max(1, math.ceil(len(items) / n_chunks))
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- baselines ------------------------------------------------------------------------------------


def nowcast_items(n_cities: int) -> list[dict]:
    from flowdapt_nowcast_example import weather as wx

    data = wx.generate_weather(n_cities, NOWCAST_CFG["history_hours"] + NOWCAST_CFG["test_hours"], seed=NOWCAST_CFG["seed"])
    neighbours = wx.upwind_neighbours(data.lat, data.lon)
    return [
        {"city": name, "lat": float(data.lat[i]), "lon": float(data.lon[i]), "own": data.values[i],
         "upwind": data.values[neighbours[i]].mean(axis=0), "start_day": data.start_day}
        for i, name in enumerate(data.names)
    ]


def nowcast_report(predictions: list[dict], out_dir: Path) -> dict:
    from flowdapt_nowcast_example import plots
    from flowdapt_nowcast_example.stages import summarize_predictions

    (out_dir / "forecast.png").write_bytes(plots.forecast_plot(predictions, NOWCAST_CFG["horizon"]))
    (out_dir / "error_map.png").write_bytes(plots.error_map(predictions, NOWCAST_CFG["horizon"]))
    return summarize_predictions(predictions)


def nowcast_loop(n_cities: int) -> dict:
    c = NOWCAST_CFG
    cities = chunks_mod.nowcast_features_chunk(nowcast_items(n_cities))
    cities = chunks_mod.nowcast_train_chunk(cities, c["horizon"], c["test_hours"], c["ridge_alpha"])
    predictions = chunks_mod.nowcast_predict_chunk(cities, c["horizon"], c["test_hours"], c["plot_cities"])
    return nowcast_report(predictions, Path(tempfile.mkdtemp()))


def nowcast_ray(n_cities: int, cpus: int) -> dict:
    import ray

    c = NOWCAST_CFG
    features = ray.remote(chunks_mod.nowcast_features_chunk)
    train = ray.remote(chunks_mod.nowcast_train_chunk)
    predict = ray.remote(chunks_mod.nowcast_predict_chunk)
    parts = [features.remote(part) for part in chunked(nowcast_items(n_cities), cpus * 4)]
    parts = [train.remote(p, c["horizon"], c["test_hours"], c["ridge_alpha"]) for p in parts]
    predictions = [row for part in ray.get([predict.remote(p, c["horizon"], c["test_hours"], c["plot_cities"])
                                            for p in parts]) for row in part]
    return nowcast_report(predictions, Path(tempfile.mkdtemp()))


def scraper_store(docs: list[dict], path: Path) -> dict:
    from flowdapt_scraper_example.vectorstore import VectorStore

    with VectorStore(path, "news") as store:
        written = store.upsert([d for d in docs if d["status"] != "unchanged"])
        return {**written, "documents": store.count()}


def scraper_crawl_plain(site_url: str, db: Path, pages: int, ray_cpus: int | None = None) -> dict:
    from flowdapt_scraper_example.stages import crawl_site
    from flowdapt_scraper_example.vectorstore import VectorStore

    with VectorStore(db, "news") as store:
        known = store.etags()
    items = crawl_site(site_url, pages, known)
    if ray_cpus is None:
        docs = chunks_mod.scraper_chunk(items)
    else:
        import ray

        task = ray.remote(chunks_mod.scraper_chunk)
        docs = [d for part in ray.get([task.remote(p) for p in chunked(items, ray_cpus * 4)]) for d in part]
    return scraper_store(docs, db)


def ask_plain(site_url: str, query: str, limit: int, db: Path, ray_cpus: int | None = None) -> dict:
    from flowdapt_ask_example.stages import answer, find_thread_urls
    from flowdapt_scraper_example.vectorstore import VectorStore

    urls = find_thread_urls(site_url, query, limit)
    if ray_cpus is None:
        summaries = chunks_mod.ask_chunk(urls)
    else:
        import ray

        task = ray.remote(chunks_mod.ask_chunk)
        summaries = [s for part in ray.get([task.remote(p) for p in chunked(urls, ray_cpus * 4)]) for s in part]
    with VectorStore(db, "threads") as store:
        return answer(query, summaries, store)


# -- Flowdapt -------------------------------------------------------------------------------------


async def run_shipped(name: str, executor, settings, plugins, config: dict, input: dict | None = None):
    from flowdapt.api import execute_workflow_async
    from flowdapt.testing import workflow_from

    workflow, _ = workflow_from(name, plugins)
    run = await execute_workflow_async(workflow, input or {}, executor=executor, config=config, settings=settings,
                                       plugins=plugins)
    assert run.state == "finished", (name, run.error)
    return run


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


async def timed_async(coro):
    start = time.perf_counter()
    value = await coro
    return time.perf_counter() - start, value


async def flowdapt_figures(backend: str, args, site, plugins) -> tuple[dict, dict]:
    """Seconds for each workload through Flowdapt on ``backend``, and the same work on plain Ray
    (measured while the Ray executor is up, on the same Ray instance)."""
    from flowdapt.settings import load_settings, set_settings

    app_dir = Path(tempfile.mkdtemp(prefix=f"flowdapt-bench-examples-{backend}-"))
    # LMDB (the default on one machine) unless --cluster-memory native: the cluster's own store.
    overrides = {"cluster_memory.backend": backend} if backend == "ray" and args.cluster_memory == "native" else {}
    settings = load_settings(app_dir=app_dir, overrides=overrides)
    set_settings(settings)
    if backend == "ray":
        from flowdapt_ray import RayExecutor, RayExecutorOptions

        executor = RayExecutor(RayExecutorOptions(cpus=args.cpus, include_dashboard=False, log_to_driver=False),
                               settings)
    else:
        from flowdapt.builtin.local_executor import LocalExecutor

        executor = LocalExecutor("process", args.cpus, settings=settings)
    await executor.start()
    ours: dict[str, float] = {}
    raw: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    try:
        if "nowcast" in args.only:
            cfg = {**NOWCAST_CFG, "n_cities": args.cities}
            warm = {**cfg, "n_cities": 8, "history_hours": 96, "test_hours": 24}
            for wf in ("nowcast-create-features", "nowcast-train", "nowcast-predict"):
                await run_shipped(wf, executor, settings, plugins, warm)
            total = 0.0
            for wf in ("nowcast-create-features", "nowcast-train", "nowcast-predict"):
                seconds, run = await timed_async(run_shipped(wf, executor, settings, plugins, cfg))
                ours[wf] = seconds
                total += seconds
            ours["nowcast"] = total
            ours["nowcast skill"] = run.result["skill"]["temperature"]
            if backend == "ray":
                raw["nowcast"], _ = await loop.run_in_executor(None, timed, lambda: nowcast_ray(args.cities, args.cpus))
        if "scraper" in args.only:
            cfg = {"site_url": site.url, "db_path": str(app_dir / "warm.db")}
            # Enough pages that every worker gets some (and loads the model) before the measured run.
            await run_shipped("scraper-crawl", executor, settings, plugins, {**cfg, "max_pages": 16 * args.cpus})
            cfg["db_path"] = str(app_dir / "news.db")
            on_site = len(site.corpus.articles)  # the loop and an earlier backend revised it
            seconds, first = await timed_async(run_shipped("scraper-crawl", executor, settings, plugins, cfg))
            ours["scraper"] = seconds
            assert first.result["new"] == on_site, first.result
            site.revise(changed=20, added=20, seed=len(ours))
            ours["scraper re-crawl"], again = await timed_async(run_shipped("scraper-crawl", executor, settings,
                                                                              plugins, cfg))
            assert (again.result["new"], again.result["changed"]) == (20, 20), again.result
            if backend == "ray":
                db = app_dir / "raw-news.db"
                raw["scraper"], _ = await loop.run_in_executor(
                    None, timed, lambda: scraper_crawl_plain(site.url, db, on_site, args.cpus))
        if "ask" in args.only:
            cfg = {"site_url": site.url, "db_path": str(app_dir / "ask.db"), "limit": args.fanout}
            await run_shipped("ask", executor, settings, plugins, {**cfg, "limit": 16 * args.cpus}, {"query": "news"})
            ours["ask"], run = await timed_async(run_shipped("ask", executor, settings, plugins, cfg,
                                                             {"query": "news"}))
            assert run.result["count"] == args.fanout, run.result["count"]
            if backend == "ray":
                db = app_dir / "raw-ask.db"
                raw["ask"], _ = await loop.run_in_executor(
                    None, timed, lambda: ask_plain(site.url, "news", args.fanout, db, args.cpus))
    finally:
        await executor.stop()
    return ours, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=["nowcast", "scraper", "ask"], default=["nowcast", "scraper", "ask"])
    parser.add_argument("--backends", nargs="+", choices=["local", "ray"], default=["local", "ray"])
    parser.add_argument("--cities", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--cluster-memory", choices=["lmdb", "native"], default="lmdb",
                        help="cluster memory on Ray: LMDB (the default on one machine) or Ray's object store")
    args = parser.parse_args()

    from flowdapt.plugins import create_plugin_system, set_plugin_system
    from flowdapt_scraper_example.corpus import CorpusServer
    from flowdapt_scraper_example.embedding import limit_blas_threads

    limit_blas_threads()  # as the plugin's workers do: the loop baseline gets the same BLAS setting
    plugins = create_plugin_system()
    set_plugin_system(plugins)
    loop_times: dict[str, float] = {}
    with CorpusServer(pages=args.pages, threads=max(400, args.fanout * 2), seed=11) as site:
        if "nowcast" in args.only:
            loop_times["nowcast"], result = timed(lambda: nowcast_loop(args.cities))
            loop_times["nowcast skill"] = result["skill"]["temperature"]
        if "scraper" in args.only:
            db = Path(tempfile.mkdtemp()) / "loop.db"
            loop_times["scraper"], result = timed(lambda: scraper_crawl_plain(site.url, db, args.pages))
            assert result["inserted"] == args.pages, result
        if "ask" in args.only:
            db = Path(tempfile.mkdtemp()) / "loop-ask.db"
            loop_times["ask"], result = timed(lambda: ask_plain(site.url, "news", args.fanout, db))
            assert result["count"] == args.fanout
        figures = {}
        for backend in args.backends:
            figures[backend] = asyncio.run(flowdapt_figures(backend, args, site, plugins))

    labels = {
        "nowcast": f"nowcast: {args.cities:,} cities x 3 targets (features + train + predict)",
        "scraper": f"scraper: crawl {args.pages:,} pages, embed, upsert",
        "ask": f"ask: 1 call, fan-out {args.fanout}",
    }
    rows = []
    for key in ("nowcast", "scraper", "ask"):
        if key not in loop_times:
            continue
        for backend, (ours, raw) in figures.items():
            row = [labels[key], backend, fmt_seconds(ours[key]), fmt_seconds(loop_times[key]),
                   f"{ours[key] / loop_times[key]:.2f}x"]
            if backend == "ray" and key in raw:
                row += [fmt_seconds(raw[key]), f"{ours[key] / raw[key]:.2f}x"]
            else:
                row += ["-", "-"]
            rows.append(row)
    print(f"\n{args.cpus} CPUs; one run each after a small warm-up; cluster memory on Ray: {args.cluster_memory}")
    print_table(["workload", "executor", "flowdapt", "plain loop", "flowdapt / loop", "plain ray", "flowdapt / ray"],
                rows)
    details = []
    for backend, (ours, _) in figures.items():
        for key in ("nowcast-create-features", "nowcast-train", "nowcast-predict", "scraper re-crawl"):
            if key in ours:
                details.append([f"{key}", backend, fmt_seconds(ours[key])])
    if details:
        print()
        print_table(["stage of the figures above", "executor", "seconds"], details)
    if "nowcast" in loop_times:
        skills = ", ".join(f"{b} {o['nowcast skill']:.3f}" for b, (o, _) in figures.items())
        print(f"\nnowcast temperature skill over persistence (1 h): loop {loop_times['nowcast skill']:.3f}, {skills}")


if __name__ == "__main__":
    main()
