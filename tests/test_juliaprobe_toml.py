"""The probe reads Project.toml and Manifest.toml with a real TOML parser (tomllib, tomli on 3.10)."""

from test_juliaprobe import PROJECT

from fluxparity import juliaprobe

VERSIONS = {"Flux": "0.16.11", "Optimisers": "0.4.8", "PythonCall": "0.9.37", "Zygote": "0.7.12"}


def check(tmp_path, project=PROJECT, manifest=None):
    (tmp_path / "Project.toml").write_text(project, encoding="utf-8")
    if manifest is not None:
        (tmp_path / "Manifest.toml").write_text(manifest, encoding="utf-8")
    return juliaprobe.check_project(tmp_path, "test", "1.10.4", juliacall_version="0.9.37")


def test_a_format_1_manifest_is_read_too(tmp_path):
    # Julia < 1.7 wrote [[Name]] tables at the top level, with no manifest_format key
    manifest = "".join(f'[[{name}]]\nuuid = "0000"\nversion = "{v}"\n\n' for name, v in VERSIONS.items())
    project = check(tmp_path, manifest=manifest)
    assert project.instantiated, project.reason
    assert project.packages == VERSIONS


def test_valid_toml_the_old_line_reader_missed_is_read(tmp_path):
    # inline tables, single-quoted strings, comments and a dotted key: all valid TOML
    project = "# a comment\n[deps]\nFlux = '587475ba'  # trailing\nOptimisers = \"3bd6\"\n" \
              "PythonCall = \"6099\"\nZygote = \"e88e\"\n[compat]\nFlux = \"0.16\"\n"
    manifest = 'manifest_format = "2.0"\n[deps]\n' + "".join(
        f"[[deps.{name}]]\nuuid = '0000'\nversion = '{v}'\ndeps = {{A = \"1\"}}\n" for name, v in VERSIONS.items())
    result = check(tmp_path, project, manifest)
    assert result.instantiated, result.reason
    assert result.packages == VERSIONS


def test_a_project_file_that_is_not_toml_says_so_in_one_line(tmp_path):
    result = check(tmp_path, project="[deps]\nFlux = \n")
    assert not result.instantiated
    assert result.reason.startswith(f"the Julia project {tmp_path} (from test) has a Project.toml that is not valid "
                                    "TOML: ")
    assert "line 2" in result.reason and "\n" not in result.reason


def test_a_manifest_that_is_not_toml_says_so_and_how_to_instantiate(tmp_path):
    result = check(tmp_path, manifest='manifest_format = "2.0"\n[[deps.Flux]\n')
    assert not result.instantiated
    assert "has a Manifest.toml that is not valid TOML: " in result.reason
    assert "Pkg.instantiate()" in result.reason


def test_a_file_that_is_not_utf8_is_not_valid_toml(tmp_path):
    (tmp_path / "Project.toml").write_bytes(b"[deps]\nFlux = \"\xff\"\n")
    result = juliaprobe.check_project(tmp_path, "test", "1.10.4")
    assert "has a Project.toml that is not valid TOML: " in result.reason


def test_a_manifest_package_without_a_version_is_missing(tmp_path):
    manifest = 'manifest_format = "2.0"\n[deps]\n' + "".join(
        f'[[deps.{name}]]\nuuid = "0000"\n' + (f'version = "{v}"\n' if name != "Zygote" else "")
        for name, v in VERSIONS.items())
    result = check(tmp_path, manifest=manifest)
    assert not result.instantiated and "Zygote is not in Manifest.toml" in result.reason
