"""The embedded vector database: sqlite-vec (``vec0`` virtual tables) in one SQLite file.

Why sqlite-vec: it is a 160 KB loadable SQLite extension with no dependencies (apsw, which loads
it, is 9 MB), the database is one file beside the server's other state, and documents, their
metadata and their vectors live in the same transaction (an upsert never leaves a vector without
its row). LanceDB would bring pyarrow and its own large native library; Chroma a server-shaped
dependency tree (onnxruntime, grpc, ...). ``vec0`` answers KNN exactly by scanning the collection:
right for an example and for modest collections; beyond that, swap this class.

The interpreter's own ``sqlite3`` is often built without extension loading (this project's is), so
the connection is made with ``apsw``, which bundles a current SQLite that can load extensions.

One table per collection: ``<name>`` (the document: url, title, summary, enrichment, ETag) and
``<name>_vec`` (``vec0``, cosine distance, the same rowid).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from flowdapt_scraper_example.embedding import DIMENSION

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
FIELDS = ("url", "title", "published", "topic", "summary", "people", "organizations", "places", "dates",
          "keywords", "etag")
_JSON_FIELDS = {"people", "organizations", "places", "dates", "keywords"}


def connect(path: str | Path):
    import apsw
    import sqlite_vec

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = apsw.Connection(str(path))
    conn.setbusytimeout(30_000)  # several runs may write; SQLite serializes them
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


class VectorStore:
    def __init__(self, path: str | Path, collection: str = "news"):
        if not _NAME.match(collection):
            raise ValueError(f"collection {collection!r}: letters, digits and _ only")
        self.path = Path(path)
        self.collection = collection
        self.conn = connect(path)
        columns = ", ".join(f"{f} TEXT" for f in FIELDS if f != "url")
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {collection} (id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, "
            f"{columns}, updated_at REAL)"
        )
        self.conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {collection}_vec USING vec0("
            f"embedding float[{DIMENSION}] distance_metric=cosine)"
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def count(self) -> int:
        return next(self.conn.execute(f"SELECT count(*) FROM {self.collection}"))[0]

    def etags(self) -> dict[str, str]:
        return dict(self.conn.execute(f"SELECT url, etag FROM {self.collection}"))

    def upsert(self, documents: list[dict[str, Any]]) -> dict[str, int]:
        """Insert or replace documents (by url) with their ``embedding``, in one transaction."""
        inserted = updated = 0
        now = time.time()
        with self.conn:
            for doc in documents:
                values = [json.dumps(doc.get(f, [])) if f in _JSON_FIELDS else doc.get(f) for f in FIELDS]
                vector = np.asarray(doc["embedding"], dtype=np.float32).tobytes()
                row = next(self.conn.execute(f"SELECT id FROM {self.collection} WHERE url = ?", (doc["url"],)), None)
                if row is None:
                    placeholders = ", ".join("?" for _ in FIELDS)
                    self.conn.execute(
                        f"INSERT INTO {self.collection} ({', '.join(FIELDS)}, updated_at) VALUES ({placeholders}, ?)",
                        (*values, now),
                    )
                    rowid = self.conn.last_insert_rowid()
                    inserted += 1
                else:
                    rowid = row[0]
                    assignments = ", ".join(f"{f} = ?" for f in FIELDS)
                    self.conn.execute(
                        f"UPDATE {self.collection} SET {assignments}, updated_at = ? WHERE id = ?", (*values, now, rowid)
                    )
                    # vec0 has no upsert: replace the vector by delete + insert.
                    self.conn.execute(f"DELETE FROM {self.collection}_vec WHERE rowid = ?", (rowid,))
                    updated += 1
                self.conn.execute(f"INSERT INTO {self.collection}_vec (rowid, embedding) VALUES (?, ?)", (rowid, vector))
        return {"inserted": inserted, "updated": updated}

    def search(self, vector: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` nearest documents by cosine distance, nearest first."""
        query = np.asarray(vector, dtype=np.float32).tobytes()
        rows = list(
            self.conn.execute(
                f"SELECT d.{', d.'.join(FIELDS)}, v.distance FROM {self.collection}_vec v "
                f"JOIN {self.collection} d ON d.id = v.rowid WHERE v.embedding MATCH ? AND k = ? ORDER BY v.distance",
                (query, int(k)),
            )
        )
        results = []
        for row in rows:
            doc = {f: (json.loads(v) if f in _JSON_FIELDS and v else v) for f, v in zip(FIELDS, row, strict=False)}
            doc.pop("etag", None)
            doc["distance"] = round(float(row[-1]), 6)
            results.append(doc)
        return results
