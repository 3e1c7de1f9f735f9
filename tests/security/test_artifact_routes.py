"""The read-only artifact routes (``GET /artifacts/...``) never serve anything outside an artifact
folder: not through ``..`` or an absolute path in any spelling, not through a symlink (on the file,
the artifact folder or the namespace folder), not the metadata file; a missing artifact or file is a
404; the routes sit behind the token check; a file a browser could run is sent as an attachment."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from flowdapt.artifacts.interface import Artifact

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SECRET = b"the server's secret"


@pytest.fixture
def served(make_server, tmp_path):
    """A server and its app dir with one artifact holding a PNG, a CSV and an HTML file, and a
    secret file next to the artifacts root that nothing may reach."""
    app_dir = tmp_path / "app"
    live = make_server(app_dir=app_dir)
    report = Artifact.new_artifact("report", "default", base_path=str(app_dir))
    report.new_file("plot.png", PNG)
    report.new_file("table.csv", "a,b\n1,2\n")
    report.new_file("page.html", "<script>alert(1)</script>")
    report.set_meta("kind", "report")
    (app_dir / "secret.txt").write_bytes(SECRET)
    return live, app_dir, report


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written: clients normalize ``..`` away, attackers don't."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_list_metadata_and_download_with_the_right_content_type(served):
    live, _, _ = served
    with live.client() as http:
        assert http.get("/artifacts/default").json() == [
            {"name": "report", "namespace": "default", "url": "/artifacts/default/report"}
        ]
        detail = http.get("/artifacts/default/report").json()
        assert detail["metadata"] == {"kind": "report"}
        files = {f["name"]: f for f in detail["files"]}
        assert sorted(files) == ["page.html", "plot.png", "table.csv"]  # no .artifact.json
        assert files["plot.png"] == {
            "name": "plot.png",
            "size": len(PNG),
            "content_type": "image/png",
            "url": "/artifacts/default/report/files/plot.png",
        }
        png = http.get(files["plot.png"]["url"])
        assert png.status_code == 200 and png.content == PNG
        assert png.headers["content-type"] == "image/png"
        assert png.headers["content-disposition"].startswith("inline")
        assert png.headers["x-content-type-options"] == "nosniff"
        csv = http.get("/artifacts/default/report/files/table.csv")
        assert csv.headers["content-type"].startswith("text/csv") and csv.text == "a,b\n1,2\n"
        # HTML from an artifact would run on the dashboard's origin: an attachment, sandboxed.
        html = http.get("/artifacts/default/report/files/page.html")
        assert html.status_code == 200
        assert html.headers["content-type"] == "application/octet-stream"
        assert html.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in html.headers["content-security-policy"]
        assert http.get("/artifacts/empty-namespace").json() == []


def test_missing_artifacts_and_files_are_404(served):
    live, _, _ = served
    with live.client() as http:
        for path in (
            "/artifacts/default/nope",
            "/artifacts/other/report",
            "/artifacts/default/report/files/nope.png",
            "/artifacts/default/nope/files/plot.png",
        ):
            response = http.get(path)
            assert response.status_code == 404, path
            assert response.json()["status_code"] == 404 and "not found" in response.json()["detail"].lower()


@pytest.mark.parametrize(
    "path",
    [
        "/artifacts/default/report/files/../../../secret.txt",
        "/artifacts/default/report/files/..%2F..%2F..%2Fsecret.txt",
        "/artifacts/default/report/files/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
        "/artifacts/default/report/files/..%5C..%5C..%5Csecret.txt",
        "/artifacts/default/report/files//etc/passwd",
        "/artifacts/default/report/files/%2Fetc%2Fpasswd",
        "/artifacts/default/report/files/..",
        "/artifacts/default/report/files/.artifact.json",
        "/artifacts/default/report/files/plot.png%00.txt",
        "/artifacts/default/%2e%2e/files/secret.txt",
        "/artifacts/%2e%2e/artifacts/files/secret.txt",
        "/artifacts/..%2F..%2F/report",
        "/artifacts/default/report%0A",
        "/artifacts/%2e%2e",
    ],
)
def test_traversal_is_refused_in_every_spelling(served, path):
    live, _, _ = served
    status, body = raw_get(live.url, path)
    assert status in (400, 404), (path, status, body)
    assert SECRET not in body and b"root:" not in body
    assert b"kind" not in body  # nor the metadata file


def test_symlinks_out_of_the_artifact_are_never_followed(served, tmp_path):
    live, app_dir, report = served
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loot.png").write_bytes(SECRET)
    Artifact.new_artifact("elsewhere", "other", base_path=str(outside))  # a real artifact, out of the root
    (outside / "artifacts" / "other" / "elsewhere" / "loot.png").write_bytes(SECRET)
    root = app_dir / "artifacts"
    os.symlink(outside / "loot.png", Path(report.path) / "link.png")  # a file link
    os.symlink(app_dir / "secret.txt", Path(report.path) / "inside-link.txt")  # a link inside the app dir
    os.symlink(outside / "artifacts" / "other" / "elsewhere", root / "default" / "linked")  # an artifact link
    os.symlink(outside / "artifacts" / "other", root / "linkedns")  # a namespace link
    with live.client() as http:
        for path in (
            "/artifacts/default/report/files/link.png",
            "/artifacts/default/report/files/inside-link.txt",
            "/artifacts/default/linked",
            "/artifacts/default/linked/files/loot.png",
            "/artifacts/linkedns/elsewhere/files/loot.png",
        ):
            response = http.get(path)
            assert response.status_code == 404, (path, response.status_code, response.text)
            assert SECRET not in response.content
        assert [a["name"] for a in http.get("/artifacts/default").json()] == ["report"]
        assert http.get("/artifacts/linkedns").json() == []
        names = [f["name"] for f in http.get("/artifacts/default/report").json()["files"]]
        assert "link.png" not in names and "inside-link.txt" not in names


def test_the_routes_need_the_token_when_the_server_has_one(make_server, tmp_path):
    app_dir = tmp_path / "secured"
    live = make_server({"api.token": "s3cret"}, app_dir=app_dir)
    Artifact.new_artifact("report", "default", base_path=str(app_dir)).new_file("plot.png", PNG)
    with live.client() as http:
        for path in (
            "/artifacts/default",
            "/artifacts/default/report",
            "/artifacts/default/report/files/plot.png",
        ):
            assert http.get(path).status_code == 401, path
            response = http.get(path, headers={"Authorization": "Bearer s3cret"})
            assert response.status_code == 200, path
        assert response.content == PNG


def test_the_python_client_reads_artifacts_and_follows_a_result_link(served):
    from flowdapt.client import Client, NotFoundError

    live, _, report = served
    with Client(live.url) as client:
        assert [a["name"] for a in client.artifacts()] == ["report"]
        files = client.artifact("report")["files"]
        assert {f["name"] for f in files} == {"page.html", "plot.png", "table.csv"}
        link = report.get_file("plot.png").url_path  # what a run result carries
        assert link == "/artifacts/default/report/files/plot.png"
        assert client.artifact_file(link) == PNG == client.artifact_file("report", "plot.png")
        with pytest.raises(NotFoundError):
            client.artifact_file("report", "missing.png")
