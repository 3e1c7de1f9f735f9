"""Extract, summarize and enrich a page: plain Python, no model.

- :func:`extract`: title, published date, topic, body text and links of an HTML page
  (``html.parser`` from the standard library);
- :func:`summarize`: extractive: the sentences whose words are most frequent across the document
  (a centroid score, stop words removed), kept in reading order;
- :func:`enrich`: entities (runs of capitalized words, organizations by their suffix words),
  dates (ISO and "12 March 2026"), keywords (the most frequent content words and bigrams).
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urljoin

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor not
    now of off on once only or other our out over own same she should so some such than that the their
    them then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your said says next year over past more than new asked
    replied update expect expected would""".split()
)
MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
DATE_PATTERNS = (
    re.compile(r"\b(\d{4}-\d{2}-\d{2})\b"),
    re.compile(rf"\b(\d{{1,2}} (?:{MONTHS}) \d{{4}})\b"),
)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"])")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
CAPITALIZED_RUN = re.compile(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)+)\b")
ORG_WORDS = frozenset({"Energy", "Labs", "Rail", "Health", "Bank", "Systems", "Shipping", "Power", "Agency",
                       "Motors", "Capital", "Pharma", "Chips", "Logistics", "Airways", "Data"})


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}
        self.paragraphs: list[str] = []
        self.links: list[str] = []
        self._in: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and attrs.get("name"):
            self.meta[attrs["name"]] = attrs.get("content") or ""
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("title", "h1", "p"):
            self._in.append(tag)
            self._text = []

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()
            text = " ".join("".join(self._text).split())
            if tag == "p" and text:
                self.paragraphs.append(text)
            elif tag == "h1" and text:
                self.title = text
            elif tag == "title" and text and not self.title:
                self.title = text

    def handle_data(self, data):
        if self._in:
            self._text.append(data)


def extract(html_text: str, base_url: str = "") -> dict:
    parser = _PageParser()
    parser.feed(html_text)
    return {
        "title": parser.title,
        "published": parser.meta.get("published", ""),
        "topic": parser.meta.get("topic", ""),
        "text": "\n".join(parser.paragraphs),
        "links": sorted({urljoin(base_url, href) for href in parser.links}),
    }


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT.split(text.replace("\n", " ")) if s.strip()]


def content_words(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in WORD.finditer(text)) if w not in STOP_WORDS and len(w) > 2]


def summarize(text: str, max_sentences: int = 2) -> str:
    parts = sentences(text)
    if len(parts) <= max_sentences:
        return " ".join(parts)
    freq = Counter(content_words(text))
    top = max(freq.values(), default=1)

    def score(sentence: str) -> float:
        words = content_words(sentence)
        return sum(freq[w] / top for w in words) / (len(words) ** 0.5 or 1.0)

    best = sorted(range(len(parts)), key=lambda i: (-score(parts[i]), i))[:max_sentences]
    return " ".join(parts[i] for i in sorted(best))


def enrich(text: str, title: str = "", max_keywords: int = 8) -> dict:
    full = f"{title}. {text}" if title else text
    runs = Counter(m.group(1) for m in CAPITALIZED_RUN.finditer(full))
    organizations = sorted(r for r in runs if r.split()[-1] in ORG_WORDS)
    people = sorted(r for r in runs if r not in organizations and len(r.split()) == 2 and not _is_month_phrase(r))
    places = sorted(
        {m.group(1) for m in re.finditer(r"\b(?:in|from|at) ([A-Z][a-z]+)\b", full)} - {w for r in runs for w in r.split()}
    )
    dates = sorted({d for pattern in DATE_PATTERNS for d in pattern.findall(full)})
    # Keywords: the most frequent content words that are not part of a name.
    named = {w.lower() for r in runs for w in r.split()} | {p.lower() for p in places}
    counts = Counter(w for w in content_words(full) if w not in named)
    keywords = [w for w, _ in counts.most_common(max_keywords)]
    return {"people": people, "organizations": organizations, "places": places, "dates": dates, "keywords": keywords}


def _is_month_phrase(run: str) -> bool:
    return any(part in MONTHS.split("|") for part in run.split())
