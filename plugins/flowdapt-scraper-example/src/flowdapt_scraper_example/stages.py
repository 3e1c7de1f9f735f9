"""Stages of the scraper example: crawl, fetch + extract + summarize + enrich, embed, upsert; search.

``scraper-crawl`` (scheduled every 15 minutes by ``scraper-every-15-minutes``):

1. ``crawl`` (root) walks the site's front page and paginated section listings, collects the article
   links and pairs each with the ETag stored for it, if any;
2. ``fetch_page`` (a map over articles) sends ``If-None-Match``: an unchanged page answers 304 and
   costs nothing more; a new or changed one is extracted, summarized and enriched (:mod:`.text`);
3. ``embed_page`` (a map) embeds title + summary with all-MiniLM-L6-v2 (:mod:`.embedding`);
4. ``store_pages`` upserts the new and changed documents into sqlite-vec (:mod:`.vectorstore`).

``scraper-search`` embeds a query and returns the nearest documents.

Settings come from the config ``scraper-example-settings`` (``site_url``, ``max_pages``,
``db_path``, ``collection``); a key in the run input overrides it for that run.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from flowdapt.compute.resources.workflow.context import get_run_context
from flowdapt_scraper_example import text as textproc
from flowdapt_scraper_example.embedding import embed
from flowdapt_scraper_example.vectorstore import VectorStore

DEFAULTS: dict[str, Any] = {
    "site_url": "http://127.0.0.1:8765",
    "max_pages": 5000,
    "db_path": "",
    "collection": "news",
    "summary_sentences": 2,
    "timeout": 10.0,
}


def settings() -> dict[str, Any]:
    ctx = get_run_context()
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (ctx.config or {}).items() if k in DEFAULTS})
    merged.update({k: v for k, v in (ctx.input or {}).items() if k in DEFAULTS})
    return merged


def db_path(cfg: dict[str, Any]) -> Path:
    """``db_path`` from the config, else ``<app_dir>/scraper-example/vectors.db`` (one machine, or a
    path every worker shares)."""
    if cfg.get("db_path"):
        return Path(cfg["db_path"])
    from flowdapt.settings import get_settings

    return Path(get_settings().app_dir) / "scraper-example" / "vectors.db"


def http_get(url: str, timeout: float, etag: str | None = None) -> tuple[int, str, str | None]:
    """(status, body, etag); 304 when ``etag`` still matches."""
    request = urllib.request.Request(url, headers={"User-Agent": "flowdapt-scraper-example"})
    if etag:
        request.add_header("If-None-Match", etag)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace"), response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return 304, "", etag
        raise


# -- scraper-crawl -----------------------------------------------------------------------------------


def crawl() -> list[dict]:
    """Breadth-first over the front page and section listings: the article URLs, each with its known ETag."""
    cfg = settings()
    with VectorStore(db_path(cfg), cfg["collection"]) as store:
        known = store.etags()
    return crawl_site(cfg["site_url"], int(cfg["max_pages"]), known, float(cfg["timeout"]))


def crawl_site(site_url: str, max_pages: int, known: dict[str, str], timeout: float = 10.0) -> list[dict]:
    root = site_url.rstrip("/") + "/"
    host = urlparse(root).netloc
    seen, articles = {root}, []
    queue = deque([root])
    while queue and len(articles) < max_pages:
        url = queue.popleft()
        _, body, _ = http_get(url, timeout)
        for link in textproc.extract(body, url)["links"]:
            link = urljoin(url, link)
            parsed = urlparse(link)
            if parsed.netloc != host or link in seen:
                continue
            seen.add(link)
            if parsed.path.startswith("/article/"):
                if len(articles) < max_pages:
                    articles.append({"url": link, "etag": known.get(link)})
            elif parsed.path == "/" or parsed.path.startswith("/section/"):
                queue.append(link)  # listings: walk them, do not store them
    return articles


def analyze(url: str, body: str, etag: str | None, summary_sentences: int) -> dict:
    page = textproc.extract(body, url)
    summary = textproc.summarize(page["text"], summary_sentences)
    return {
        "url": url,
        "etag": etag,
        "title": page["title"],
        "published": page["published"],
        "topic": page["topic"],
        "summary": summary,
        **textproc.enrich(page["text"], page["title"]),
    }


def fetch_page(item: dict) -> dict:
    """One article: 304 means unchanged (nothing else to do); else extract, summarize, enrich."""
    cfg = settings()
    return fetch_and_analyze(item["url"], item.get("etag"), float(cfg["timeout"]), int(cfg["summary_sentences"]))


def fetch_and_analyze(url: str, known_etag: str | None, timeout: float = 10.0, summary_sentences: int = 2) -> dict:
    status, body, etag = http_get(url, timeout, known_etag)
    if status == 304:
        return {"url": url, "status": "unchanged"}
    doc = analyze(url, body, etag, summary_sentences)
    doc["status"] = "changed" if known_etag else "new"
    return doc


def embed_page(doc: dict) -> dict:
    """One document: its embedding (title and summary); unchanged pages pass through."""
    if doc["status"] == "unchanged":
        return doc
    return {**doc, "embedding": embed(f"{doc['title']}. {doc['summary']}")[0]}


def store_pages(docs: list[dict]) -> dict:
    """Upsert the new and changed documents; count what the crawl saw."""
    cfg = settings()
    fresh = [d for d in docs if d["status"] != "unchanged"]
    with VectorStore(db_path(cfg), cfg["collection"]) as store:
        written = store.upsert(fresh)
        total = store.count()
    counts = {s: sum(1 for d in docs if d["status"] == s) for s in ("new", "changed", "unchanged")}
    return {"crawled": len(docs), **counts, **written, "documents": total, "collection": cfg["collection"],
            "database": str(db_path(cfg))}


# -- scraper-search ----------------------------------------------------------------------------------


def search(query: str = "", k: int = 5) -> dict:
    """The ``k`` documents nearest to ``query`` (cosine distance of their embeddings)."""
    if not query.strip():
        raise ValueError("give a query: the run input {'query': '...'}")
    cfg = settings()
    with VectorStore(db_path(cfg), cfg["collection"]) as store:
        hits = store.search(embed(query)[0], int(k))
    return {"query": query, "results": hits}
