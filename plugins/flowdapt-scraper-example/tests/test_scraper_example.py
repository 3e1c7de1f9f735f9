"""The scraper example: the embedding model runs offline and matches the reference, the generated
site is crawled over HTTP, only new or changed pages are re-processed, and search finds them."""

from __future__ import annotations

import numpy as np
import pytest

from flowdapt.definitions import collect_definitions
from flowdapt_scraper_example import text
from flowdapt_scraper_example.corpus import CorpusServer, generate_corpus
from flowdapt_scraper_example.embedding import embed
from flowdapt_scraper_example.vectorstore import VectorStore


def test_minilm_in_numpy_matches_sentence_transformers():
    # The similarities sentence-transformers' own quickstart prints for all-MiniLM-L6-v2.
    vectors = embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    np.testing.assert_allclose(similarity[0, 1], 0.6660, atol=2e-4)
    np.testing.assert_allclose(similarity[0, 2], 0.1046, atol=2e-4)
    np.testing.assert_allclose(similarity[1, 2], 0.1411, atol=2e-4)


def test_extract_summarize_enrich_a_generated_article():
    page = generate_corpus(pages=5, threads=1, seed=1).articles[2]
    doc = text.extract(page.html(), "http://site/article/2")
    assert doc["title"] == page.title and doc["published"] == page.published and doc["topic"] == page.topic
    assert "http://site/article/" + page.links[0].rsplit("/", 1)[-1] in doc["links"]
    summary = text.summarize(doc["text"], 2)
    assert len(text.sentences(summary)) == 2 and all(s in doc["text"] for s in text.sentences(summary))
    found = text.enrich(doc["text"], doc["title"])
    assert any(org in page.title for org in found["organizations"])
    assert found["dates"] and found["keywords"] and found["people"] and found["places"]


def test_vector_store_upserts_by_url_and_finds_nearest(tmp_path):
    vectors = embed(["solar panels on roofs", "football final tonight", "wind turbines offshore"])
    docs = [{"url": f"u{i}", "title": f"t{i}", "summary": s, "embedding": v}
            for i, (s, v) in enumerate(zip(["solar", "football", "wind"], vectors, strict=True))]
    with VectorStore(tmp_path / "v.db", "news") as store:
        assert store.upsert(docs) == {"inserted": 3, "updated": 0}
        assert store.upsert([{**docs[1], "title": "t1 again"}]) == {"inserted": 0, "updated": 1}
        assert store.count() == 3
        hits = store.search(embed("renewable energy from the sun")[0], k=2)
    assert [h["url"] for h in hits][0] == "u0" and hits[0]["distance"] < hits[1]["distance"]
    with pytest.raises(ValueError, match="collection"):
        VectorStore(tmp_path / "v.db", "news; drop table news")


def test_plugin_ships_its_workflows_config_and_schedule(flowdapt_plugins):
    shipped = sorted((d.kind, d.name) for d in collect_definitions(flowdapt_plugins, ["scraper_example"]))
    assert shipped == [("config", "scraper-example-settings"), ("trigger_rule", "scraper-every-15-minutes"),
                       ("workflow", "scraper-crawl"), ("workflow", "scraper-search")]


def test_crawl_recrawl_and_search(execute_workflow_inline, tmp_path):
    with CorpusServer(pages=40, threads=0, seed=5) as site:
        config = {"site_url": site.url, "db_path": str(tmp_path / "news.db")}
        first = execute_workflow_inline("scraper-crawl", config=config, check=True)
        assert first.result | {"database": None} == {
            "crawled": 40, "new": 40, "changed": 0, "unchanged": 0, "inserted": 40, "updated": 0,
            "documents": 40, "collection": "news", "database": None,
        }
        assert first.stages["embed_page"].items_done == 40
        revised = site.revise(changed=3, added=2)
        requests_before = site.requests
        second = execute_workflow_inline("scraper-crawl", config=config, check=True)
        assert {k: second.result[k] for k in ("crawled", "new", "changed", "unchanged", "documents")} == {
            "crawled": 42, "new": 2, "changed": 3, "unchanged": 37, "documents": 42}
        # Unchanged pages were asked with If-None-Match and answered 304: one request each, no body.
        assert site.requests - requests_before < 42 + 20
        target = site.corpus.page(revised["added"][0])
        found = execute_workflow_inline("scraper-search", {"query": target.title, "k": 3}, config=config, check=True)
    top = found.result["results"][0]
    assert top["url"] == site.url + revised["added"][0] and top["title"] == target.title
    assert set(top) >= {"summary", "people", "organizations", "places", "dates", "keywords", "distance"}


def test_search_without_a_query_says_what_to_give(execute_workflow_inline, tmp_path):
    run = execute_workflow_inline("scraper-search", {"query": " "}, config={"db_path": str(tmp_path / "x.db")})
    assert run.state == "failed" and "give a query" in run.error.message
