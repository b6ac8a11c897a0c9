"""The code of docs/testing.md's worked example and of the README's "Use it in your own tests" runs as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_testing_doc_worked_example_runs(tmp_path):
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    example = python_blocks(ROOT / "docs" / "testing.md")[-1]
    assert "## A worked example" in text and text.index("## A worked example") < text.index(example)
    namespace = {"workdir": tmp_path}
    exec(compile(example, "docs/testing.md", "exec"), namespace)
    shown = re.search(r"```\n(parity against golden gru\.npz.*?)```", text, flags=re.S).group(1).splitlines()
    assert namespace["message"].splitlines()[1:] == shown[1:]  # the doc shows what the example prints


def test_readme_section_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it in your own tests", 1)[1].split("\n## ", 1)[0]
    blocks = python_blocks_in(section)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def python_blocks_in(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)
