"""The ask example: one run fans out to a job per matching thread and answers with structured,
stored summaries, most relevant first."""

from __future__ import annotations

from flowdapt.definitions import collect_definitions
from flowdapt_scraper_example.corpus import CorpusServer, thread_text
from flowdapt_scraper_example.vectorstore import VectorStore


def test_plugin_ships_the_ask_workflow(flowdapt_plugins):
    shipped = sorted((d.kind, d.name) for d in collect_definitions(flowdapt_plugins, ["ask_example"]))
    assert shipped == [("config", "ask-example-settings"), ("workflow", "ask")]


def test_ask_fans_out_stores_and_answers(execute_workflow_inline, tmp_path):
    with CorpusServer(pages=5, threads=48, seed=2) as site:
        expected = sorted(site.url + t.path for t in site.corpus.threads if "climate" in thread_text(t).lower())
        config = {"site_url": site.url, "db_path": str(tmp_path / "v.db")}
        run = execute_workflow_inline("ask", {"query": "climate"}, config=config, check=True)
    answer = run.result
    assert answer["query"] == "climate" and answer["count"] == len(expected) >= 6
    assert run.stages["summarize_thread"].items_done == len(expected)
    assert sorted(r["url"] for r in answer["results"]) == expected
    relevance = [r["relevance"] for r in answer["results"]]
    assert relevance == sorted(relevance, reverse=True)
    first = answer["results"][0]
    assert set(first) == {"url", "title", "published", "topic", "summary", "people", "organizations", "places",
                          "dates", "keywords", "relevance"}
    assert first["summary"] and first["title"].startswith("What does the")
    assert answer["stored"] == {"inserted": len(expected), "updated": 0}
    with VectorStore(tmp_path / "v.db", "threads") as store:
        assert store.count() == len(expected)


def test_ask_limit_bounds_the_fan_out(execute_workflow_inline, tmp_path):
    with CorpusServer(pages=5, threads=48, seed=2) as site:
        config = {"site_url": site.url, "db_path": str(tmp_path / "v.db")}
        run = execute_workflow_inline("ask", {"query": "news", "limit": 5}, config=config, check=True)
    assert run.result["count"] == 5


def test_ask_without_a_query_fails_with_a_message(execute_workflow_inline, tmp_path):
    run = execute_workflow_inline("ask", {}, config={"db_path": str(tmp_path / "v.db")})
    assert run.state == "failed" and "give a query" in run.error.message
