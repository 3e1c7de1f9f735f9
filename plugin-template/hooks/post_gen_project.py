"""Tell uv where flowdapt comes from while the plugin is developed (``flowdapt_source``).

Flowdapt is not on a package index the way the plugin will be installed: ``auto`` (the default)
points uv at the ``core/`` of the Flowdapt checkout this template was rendered from (local or
cloned by cookiecutter), so ``uv sync && uv run pytest`` works on a fresh machine. A path or a git
URL names another source; ``index`` writes nothing (flowdapt from the package index). The source
is a ``[tool.uv.sources]`` entry: it is not part of the built wheel, whose requirement stays
``flowdapt_requirement``.
"""

import os
import sys
from pathlib import Path

source = r"""{{ cookiecutter.flowdapt_source }}""".strip()
repo_dir = r"""{{ cookiecutter._repo_dir }}""".strip() or r"""{{ cookiecutter._template }}""".strip()
# {% raw %} (the rest is plain Python, not a Jinja template)


def template_dirs() -> list[Path]:
    """The template's directory. cookiecutter passes it as given: a relative one is relative to
    where cookiecutter was started, which this hook (run in the new project) knows only as $PWD."""
    given = Path(repo_dir).expanduser()
    if given.is_absolute():
        return [given]
    return [Path(base) / given for base in (os.environ.get("PWD"), os.getcwd()) if base]


def checkout_core() -> Path | None:
    for directory in template_dirs():
        for candidate in (directory.resolve().parent / "core", directory.resolve() / "core"):
            pyproject = candidate / "pyproject.toml"
            if pyproject.is_file() and 'name = "flowdapt"' in pyproject.read_text():
                return candidate
    return None


if source.lower() == "auto":
    core = checkout_core()
    if core is None:
        print(
            "note: no Flowdapt checkout next to the template; flowdapt will come from the package index "
            "(set flowdapt_source to a path or git URL to change that)",
            file=sys.stderr,
        )
        sys.exit(0)
    entry = f'flowdapt = {{ path = "{core.as_posix()}", editable = true }}'
elif source.lower() in ("index", "", "none"):
    sys.exit(0)
elif "://" in source or source.startswith("git+") or source.endswith(".git"):
    url = source.removeprefix("git+")
    entry = f'flowdapt = {{ git = "{url}", subdirectory = "core" }}'
else:
    path = Path(source).expanduser().resolve()
    if (path / "core" / "pyproject.toml").is_file():
        path = path / "core"
    if not (path / "pyproject.toml").is_file():
        print(f"error: flowdapt_source {source!r} is no flowdapt project (no pyproject.toml in {path})", file=sys.stderr)
        sys.exit(1)
    entry = f'flowdapt = {{ path = "{path.as_posix()}", editable = true }}'

with open("pyproject.toml", "a") as pyproject:
    pyproject.write(
        "\n# Where uv gets flowdapt while you develop this plugin (the template's flowdapt_source). Not part\n"
        "# of the built wheel: installed elsewhere, the plugin requires the flowdapt that is installed there.\n"
        f"[tool.uv.sources]\n{entry}\n"
    )
# {% endraw %}
