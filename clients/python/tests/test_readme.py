"""The README's example runs as written, against the test cluster."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DEV_ENDPOINTS = "127.0.0.1:7400,127.0.0.1:7410,127.0.0.1:7420"


def test_the_readme_example_runs(cluster):
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    assert DEV_ENDPOINTS in example
    code = example.replace(DEV_ENDPOINTS, ",".join(cluster.endpoints))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})  # noqa: S102 - our own README
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert re.fullmatch(r"holding /locks/report with fencing token \d+", lines[0]), lines
    assert re.match(
        r"leading with token (\d+) Leader\(name='/elections/db', value=b'10.0.0.7:5432', token=\1,",
        lines[1],
    ), lines
    assert re.match(
        r"Event\(revision=\d+, kind='created', path='/config', data=b'blue'", lines[2]
    ), lines
