"""Stages of the ask example: one query fans out to a fetch-and-summarize job per matching thread.

``POST /workflows/ask/run?wait=true {"query": "battery storage"}``:

1. ``find_threads`` (root) asks the site's search for the threads matching the query (up to
   ``limit``, default 200): one work item per thread;
2. ``summarize_thread`` (a map: hundreds of parallel jobs) fetches a thread, extracts its posts,
   summarizes and enriches them (the scraper example's :mod:`~flowdapt_scraper_example.text`) and
   embeds the summary (all-MiniLM-L6-v2 in numpy);
3. ``store_and_answer`` upserts them into the sqlite-vec collection ``threads`` and returns the
   structured summaries, most relevant to the query first (cosine similarity of the embeddings).

Settings come from the config ``ask-example-settings`` (``site_url``, ``limit``, ``db_path``,
``collection``); a key in the run input overrides it for that run.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import numpy as np

from flowdapt.compute.resources.workflow.context import get_run_context
from flowdapt_scraper_example.embedding import embed
from flowdapt_scraper_example.stages import analyze, db_path, http_get
from flowdapt_scraper_example.vectorstore import VectorStore

DEFAULTS: dict[str, Any] = {
    "site_url": "http://127.0.0.1:8765",
    "limit": 200,
    "db_path": "",
    "collection": "threads",
    "summary_sentences": 2,
    "timeout": 10.0,
}


def settings() -> dict[str, Any]:
    ctx = get_run_context()
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (ctx.config or {}).items() if k in DEFAULTS})
    merged.update({k: v for k, v in (ctx.input or {}).items() if k in DEFAULTS})
    return merged


def find_threads(query: str = "") -> list[dict]:
    """The threads the site's search finds for ``query``: one work item each."""
    if not query.strip():
        raise ValueError("give a query: POST /workflows/ask/run {\"query\": \"...\"}")
    cfg = settings()
    return [{"url": url} for url in find_thread_urls(cfg["site_url"], query, int(cfg["limit"]), float(cfg["timeout"]))]


def find_thread_urls(site_url: str, query: str, limit: int, timeout: float = 10.0) -> list[str]:
    base = site_url.rstrip("/")
    _, body, _ = http_get(f"{base}/search?q={quote_plus(query)}&limit={limit}", timeout)
    return [base + path for path in json.loads(body)["threads"]]


def summarize_thread(item: dict) -> dict:
    """One thread: fetch, extract, summarize, enrich, embed."""
    cfg = settings()
    return summarize_thread_url(item["url"], float(cfg["timeout"]), int(cfg["summary_sentences"]))


def summarize_thread_url(url: str, timeout: float = 10.0, summary_sentences: int = 2) -> dict:
    _, body, etag = http_get(url, timeout)
    doc = analyze(url, body, etag, summary_sentences)
    doc["embedding"] = embed(f"{doc['title']}. {doc['summary']}")[0]
    return doc


def store_and_answer(summaries: list[dict]) -> dict:
    """Store every summary in the vector database; answer with them, most relevant first."""
    cfg = settings()
    query = (get_run_context().input or {}).get("query", "")
    with VectorStore(db_path(cfg), cfg["collection"]) as store:
        return answer(query, summaries, store)


def answer(query: str, summaries: list[dict], store: VectorStore) -> dict:
    written = store.upsert(summaries)
    relevance = np.stack([s["embedding"] for s in summaries]) @ embed(query)[0] if summaries else np.zeros(0)
    results = []
    for score, doc in sorted(zip(relevance.tolist(), summaries, strict=True), key=lambda p: -p[0]):
        results.append({k: v for k, v in doc.items() if k not in ("embedding", "etag")} | {"relevance": round(score, 4)})
    return {"query": query, "count": len(results), "stored": written, "collection": store.collection,
            "results": results}
