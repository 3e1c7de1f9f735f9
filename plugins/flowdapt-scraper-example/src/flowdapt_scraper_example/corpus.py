"""A generated news site served over HTTP on 127.0.0.1: what the scraper crawls, offline.

:func:`generate_corpus` writes news-like articles (a topic, people, organizations, places,
dates, related-article links) and discussion threads (a question and replies, for the ``ask``
example) from a seed, so every run sees the same site. :class:`CorpusServer` serves it:

- ``/`` the front page, linking the section pages;
- ``/section/<topic>?page=N`` paginated article listings (20 a page, "next" links);
- ``/article/<id>`` an article (``<meta name="published">``, ``<h1>``, paragraphs, related links);
- ``/threads/<id>`` a discussion thread; ``/search?q=words`` the threads matching every word (JSON);
- ETag on every page and ``If-None-Match`` answered with 304, so a re-crawl skips unchanged pages.

:meth:`CorpusServer.revise` changes some articles and adds new ones (what a later scheduled
crawl must pick up). ``python -m flowdapt_scraper_example.corpus --pages 3000 --port 8765`` serves
a site to try the workflows from the dashboard or the CLI.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 20

TOPICS = {
    "energy": ["solar", "wind farm", "grid", "battery storage", "power prices", "hydrogen", "turbines", "emissions"],
    "markets": ["shares", "bond yields", "inflation", "interest rates", "earnings", "currency", "investors", "dividends"],
    "health": ["vaccine", "hospital", "clinical trial", "patients", "nurses", "outbreak", "treatment", "public health"],
    "technology": ["chips", "software", "data centre", "artificial intelligence", "cloud", "startup", "encryption", "robots"],
    "climate": ["heatwave", "flooding", "drought", "rainfall", "glacier", "storm", "sea level", "wildfire"],
    "transport": ["rail", "airport", "electric cars", "shipping", "bus routes", "freight", "traffic", "bridges"],
    "science": ["telescope", "genome", "particle", "fossils", "laboratory", "satellite", "experiment", "ocean floor"],
    "sports": ["championship", "final", "transfer", "stadium", "coach", "season", "record", "tournament"],
}
FIRST = ["Anna", "Marco", "Sofia", "Lukas", "Elena", "Jonas", "Clara", "Mateo", "Ines", "Pavel", "Maya", "Tomas",
         "Nora", "Felix", "Leila", "Oskar", "Hana", "Rafael", "Greta", "Omar"]
LAST = ["Keller", "Rossi", "Novak", "Lindqvist", "Moreau", "Santos", "Berger", "Kowalski", "Haddad", "Jensen",
        "Ferreira", "Dvorak", "Schmidt", "Almeida", "Brandt", "Okafor", "Varga", "Nilsen", "Costa", "Weber"]
ORGS = ["Northwind Energy", "Helix Labs", "Baltic Rail", "Aurora Health", "Meridian Bank", "Cobalt Systems",
        "Atlas Shipping", "Verdant Power", "Orion Space Agency", "Lumen Motors", "Fjord Capital", "Summit Pharma",
        "Tessera Chips", "Harbor Logistics", "Crescent Airways", "Polar Data"]
PLACES = ["Lisbon", "Hamburg", "Krakow", "Lyon", "Bergen", "Turin", "Ghent", "Brno", "Seville", "Tallinn", "Graz",
          "Porto", "Malmo", "Bilbao", "Leipzig", "Utrecht"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]

SENTENCES = [
    "{org} said on {date} that its {kw} programme in {place} would expand next year.",
    "{person}, who leads the {kw} team at {org}, called the results \"a turning point\".",
    "Officials in {place} expect the {kw} plan to cost more than initially estimated.",
    "The {kw} figures published on {date} surprised analysts in {place}.",
    "{person} warned that {kw} and {kw2} remain the biggest risks for {org}.",
    "Residents of {place} have followed the debate about {kw} closely.",
    "According to {org}, demand for {kw} rose sharply over the past quarter.",
    "A report by {org} links {kw} to changes in {kw2} across the region.",
    "{person} told reporters in {place} that {kw2} would be reviewed by {date}.",
    "Critics argue that the {kw} strategy ignores {kw2}.",
    "The decision on {kw} is expected before {date}, {person} said.",
    "{org} and partners in {place} will share data on {kw2} with researchers.",
]


@dataclass
class Page:
    path: str
    kind: str  # article | thread
    topic: str
    title: str
    published: str
    paragraphs: list[str]
    links: list[str] = field(default_factory=list)
    revision: int = 0

    def html(self) -> str:
        body = "\n".join(f"<p>{html.escape(p)}</p>" for p in self.paragraphs)
        related = "".join(f'<li><a href="{link}">{link}</a></li>' for link in self.links)
        return (
            "<!doctype html><html><head>"
            f"<title>{html.escape(self.title)}</title>"
            f'<meta name="published" content="{self.published}">'
            f'<meta name="topic" content="{self.topic}">'
            "</head><body><nav><a href=\"/\">Home</a></nav>"
            f"<article><h1>{html.escape(self.title)}</h1>{body}</article>"
            f"<aside><h2>Related</h2><ul>{related}</ul></aside></body></html>"
        )


def _fill(rng: random.Random, template: str, topic: str, day: date) -> str:
    kw, kw2 = rng.sample(TOPICS[topic], 2)
    when = day + timedelta(days=rng.randint(-20, 40))
    return template.format(
        org=rng.choice(ORGS),
        person=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        place=rng.choice(PLACES),
        kw=kw,
        kw2=kw2,
        date=f"{when.day} {MONTHS[when.month - 1]} {when.year}",
    )


def _article(rng: random.Random, index: int, n_articles: int, revision: int = 0) -> Page:
    topic = list(TOPICS)[index % len(TOPICS)]
    day = date(2026, 1, 1) + timedelta(days=rng.randint(0, 300))
    kw = rng.choice(TOPICS[topic])
    title = f"{rng.choice(ORGS)} {rng.choice(['expands', 'delays', 'reviews', 'launches', 'cuts'])} {kw} plans in {rng.choice(PLACES)}"
    paragraphs = [
        " ".join(_fill(rng, rng.choice(SENTENCES), topic, day) for _ in range(rng.randint(3, 5)))
        for _ in range(rng.randint(3, 5))
    ]
    if revision:
        paragraphs.append(f"Update {revision}: " + _fill(rng, rng.choice(SENTENCES), topic, day))
    links = [f"/article/{rng.randrange(n_articles)}" for _ in range(3)]
    return Page(f"/article/{index}", "article", topic, title, day.isoformat(), paragraphs, links, revision)


def _thread(rng: random.Random, index: int) -> Page:
    topic = list(TOPICS)[index % len(TOPICS)]
    day = date(2026, 1, 1) + timedelta(days=rng.randint(0, 300))
    kw, kw2 = rng.sample(TOPICS[topic], 2)
    title = f"What does the {kw} news mean for {kw2} in {rng.choice(PLACES)}?"
    posts = [f"{rng.choice(FIRST)} asked: " + _fill(rng, rng.choice(SENTENCES), topic, day)]
    for _ in range(rng.randint(3, 7)):
        posts.append(
            f"{rng.choice(FIRST)} replied: "
            + " ".join(_fill(rng, rng.choice(SENTENCES), topic, day) for _ in range(rng.randint(1, 3)))
        )
    return Page(f"/threads/{index}", "thread", topic, title, day.isoformat(), posts, [])


@dataclass
class Corpus:
    articles: list[Page]
    threads: list[Page]
    seed: int

    def page(self, path: str) -> Page | None:
        kind, _, ident = path.strip("/").partition("/")
        items = self.articles if kind == "article" else self.threads if kind == "threads" else None
        if items is None or not ident.isdigit() or int(ident) >= len(items):
            return None
        return items[int(ident)]


def generate_corpus(pages: int = 2000, threads: int = 400, seed: int = 11) -> Corpus:
    rng = random.Random(seed)
    articles = [_article(rng, i, pages) for i in range(pages)]
    return Corpus(articles, [_thread(rng, i) for i in range(threads)], seed)


def thread_text(page: Page) -> str:
    return f"{page.topic}. {page.title}. " + " ".join(page.paragraphs)


class CorpusServer:
    """Serves a :class:`Corpus` on ``127.0.0.1`` from a background thread; use as a context manager."""

    def __init__(self, corpus: Corpus | None = None, host: str = "127.0.0.1", port: int = 0, **generate):
        self.corpus = corpus or generate_corpus(**generate)
        self._lock = threading.Lock()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                with server._lock:
                    server.requests += 1
                status, body, ctype = server._render(self.path)
                etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
                if status == 200 and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def _render(self, raw_path: str) -> tuple[int, bytes, str]:
        parsed = urlparse(raw_path)
        path, query = parsed.path, parse_qs(parsed.query)
        with self._lock:
            corpus = self.corpus
        if path == "/":
            links = "".join(f'<li><a href="/section/{t}">{t}</a></li>' for t in TOPICS)
            return 200, f"<html><body><h1>News</h1><ul>{links}</ul></body></html>".encode(), "text/html"
        if path.startswith("/section/"):
            topic = path.rsplit("/", 1)[-1]
            if topic not in TOPICS:
                return 404, b"not found", "text/plain"
            page_no = int(query.get("page", ["1"])[0] or 1)
            listed = [a for a in corpus.articles if a.topic == topic]
            chunk = listed[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
            items = "".join(f'<li><a class="story" href="{a.path}">{html.escape(a.title)}</a></li>' for a in chunk)
            more = f'<a rel="next" href="/section/{topic}?page={page_no + 1}">next</a>' if page_no * PAGE_SIZE < len(listed) else ""
            return 200, f"<html><body><h1>{topic}</h1><ul>{items}</ul>{more}</body></html>".encode(), "text/html"
        if path == "/search":
            words = [w.lower() for w in " ".join(query.get("q", [""])).split() if w]
            limit = int(query.get("limit", ["1000"])[0])
            hits = [t.path for t in corpus.threads if all(w in thread_text(t).lower() for w in words)]
            return 200, json.dumps({"query": " ".join(words), "threads": hits[:limit]}).encode(), "application/json"
        page = corpus.page(path)
        if page is None:
            return 404, b"not found", "text/plain"
        return 200, page.html().encode(), "text/html"

    def revise(self, changed: int = 10, added: int = 10, seed: int = 99) -> dict:
        """Change ``changed`` existing articles and add ``added`` new ones; returns their paths."""
        rng = random.Random(seed)
        with self._lock:
            articles = list(self.corpus.articles)
            picked = rng.sample(range(len(articles)), changed)
            for i in picked:
                old = articles[i]
                new = _article(random.Random(f"{seed}-{i}"), i, len(articles), revision=old.revision + 1)
                new.title, new.topic = old.title, old.topic
                articles[i] = new
            start = len(articles)
            articles.extend(_article(random.Random(f"{seed}-new-{j}"), start + j, start + added) for j in range(added))
            # New articles must be reachable from their section listing: keep topic order by index.
            for j in range(added):
                articles[start + j].topic = list(TOPICS)[(start + j) % len(TOPICS)]
            self.corpus = Corpus(articles, self.corpus.threads, self.corpus.seed)
        return {"changed": [articles[i].path for i in picked], "added": [f"/article/{start + j}" for j in range(added)]}

    def start(self) -> CorpusServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="corpus-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CorpusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a generated news corpus on 127.0.0.1")
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=400)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    server = CorpusServer(port=args.port, pages=args.pages, threads=args.threads, seed=args.seed)
    print(f"serving {args.pages} articles and {args.threads} threads on {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
