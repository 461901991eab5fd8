"""The README's Python quick start is python/examples/quickstart.py, which
.ci/run runs in a fresh venv holding only the wheel: the README shows that
file's code, not a copy that drifted."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_readme_shows_the_quick_start_that_runs():
    quick = (ROOT / "python" / "examples" / "quickstart.py").read_text()
    code = quick[quick.index("import os"):]
    assert f"```python\n{code}```" in (ROOT / "README.md").read_text()
