"""The pins in pyproject.toml are those of requirements.txt, which CI installs."""

import re
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.-]+)$")


def pins(specs):
    found = {}
    for spec in specs:
        match = PIN.match(spec.strip())
        assert match, f"{spec!r} is not pinned (name==version)"
        found[match.group(1)] = match.group(2)
    return found


def test_pyproject_pins_what_requirements_txt_pins():
    required = pins(
        line
        for line in (HERE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    pyproject = (HERE / "pyproject.toml").read_text()
    # The quoted requirements of [project] and its extras (the build system's are not pins).
    project = pyproject.split("[project]", 1)[1].split("[tool.", 1)[0]
    declared = re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', project)
    assert declared, project
    for spec in declared:
        name, version = PIN.match(spec).groups()
        assert required.get(name) == version, (
            f"pyproject.toml pins {spec}, requirements.txt {required}"
        )
    assert set(pins(declared)) == set(required)
