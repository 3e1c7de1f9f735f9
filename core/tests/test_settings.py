"""Settings: app dir, YAML file created on first use, env overrides, precedence, clear errors."""

from __future__ import annotations

import pytest
import yaml

from flowdapt.errors import ConfigurationError
from flowdapt.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)


def test_first_use_creates_app_dir_and_config_file(tmp_path):
    app = tmp_path / "app"
    s = load_settings(app_dir=app)
    assert s.app_dir == app and (app / "flowdapt.yaml").exists()
    assert s.executor.backend == "local" and s.database.backend == "sqlite"
    data = yaml.safe_load((app / "flowdapt.yaml").read_text())
    assert data["executor"]["backend"] == "local"


def test_file_then_env_then_overrides(tmp_path, monkeypatch):
    app = tmp_path / "app"
    app.mkdir()
    (app / "flowdapt.yaml").write_text("executor:\n  backend: fromfile\n  options: {workers: 3}\napi:\n  port: 9000\n")
    s = load_settings(app_dir=app)
    assert s.executor.backend == "fromfile" and s.executor.options == {"workers": 3} and s.api.port == 9000
    monkeypatch.setenv("FLOWDAPT__EXECUTOR__BACKEND", "dask")
    monkeypatch.setenv("FLOWDAPT__API__PORT", "9100")
    s = load_settings(app_dir=app)
    assert s.executor.backend == "dask" and s.api.port == 9100
    assert s.executor.options == {"workers": 3}, "env for one key keeps the file's sibling keys"
    s = load_settings(app_dir=app, overrides={"executor.backend": "ray", "api.port": 9200})
    assert s.executor.backend == "ray" and s.api.port == 9200


def test_app_dir_from_env_and_config_file_dash(tmp_path, monkeypatch):
    app = tmp_path / "envapp"
    monkeypatch.setenv("FLOWDAPT__APP_DIR", str(app))
    s = load_settings(config_file="-")
    assert s.app_dir == app and not (app / "flowdapt.yaml").exists() and s.config_path is None


def test_errors_name_the_setting(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "flowdapt.yaml").write_text("api:\n  port: not-a-port\n")
    with pytest.raises(ConfigurationError, match="api.port"):
        load_settings(app_dir=app)
    (app / "flowdapt.yaml").write_text("executer:\n  backend: local\n")
    with pytest.raises(ConfigurationError, match="executer"):
        load_settings(app_dir=app)
    (app / "flowdapt.yaml").write_text("executor: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_settings(app_dir=app)
