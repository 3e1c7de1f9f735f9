"""The example plugins' work as plain functions over chunks: the plain-Python and plain-Ray baselines
of scripts/bench/examples.py call these (they share the plugins' per-item code, without Flowdapt)."""

from __future__ import annotations

from flowdapt_nowcast_example import weather as wx


def nowcast_features_chunk(items: list[dict]) -> list[dict]:
    return [
        {
            "city": it["city"],
            "lat": it["lat"],
            "lon": it["lon"],
            "features": wx.city_features(it["own"], it["upwind"], it["lon"], it["start_day"]),
            "series": it["own"],
        }
        for it in items
    ]


def nowcast_train_chunk(cities: list[dict], horizon: int, test_hours: int, alpha: float) -> list[dict]:
    return [
        {**c, "models": wx.train_city_models(c["features"], c["series"], horizon, test_hours, alpha)[0]}
        for c in cities
    ]


def nowcast_predict_chunk(cities: list[dict], horizon: int, test_hours: int, plot_cities: int) -> list[dict]:
    out = []
    for c in cities:
        issued, forecasts, rmse, persistence = wx.forecast_city(c["models"], c["features"], c["series"], horizon,
                                                                test_hours)
        row = {"city": c["city"], "lat": c["lat"], "lon": c["lon"], "horizon": horizon, "rmse": rmse,
               "persistence_rmse": persistence}
        if int(c["city"].rsplit("-", 1)[-1]) < plot_cities:
            row["series"] = wx.plot_series(issued, forecasts, c["series"], horizon)
        out.append(row)
    return out


def scraper_chunk(items: list[dict]) -> list[dict]:
    from flowdapt_scraper_example.embedding import embed
    from flowdapt_scraper_example.stages import fetch_and_analyze

    docs = [fetch_and_analyze(it["url"], it.get("etag")) for it in items]
    for doc in docs:
        if doc["status"] != "unchanged":
            doc["embedding"] = embed(f"{doc['title']}. {doc['summary']}")[0]
    return docs


def ask_chunk(urls: list[str]) -> list[dict]:
    from flowdapt_ask_example.stages import summarize_thread_url

    return [summarize_thread_url(url) for url in urls]
