"""A user-named output (`--out`, export's DEST) is never, never holds and never lies inside the tracking store's
artifacts and database, langdec's home folder or the checkout's own files, for every command that replaces a
folder (one function: langdec.atomic.check_output); and a killed or link-replacing write leaves nothing behind.

On main, `study-tables --out <the store's artifact root> --force` replaced every run's artifacts with its output,
then logged that output into itself until `OSError: File name too long`; `report` then exited 0 as if the
experiment were empty."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.core import atomic, paths

STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "published" / "experiments" / "phase3" / "conditions"
EXPERIMENT = "imported-phase-3"


@pytest.fixture(scope="module")
def imported(module_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for path in STUDY.rglob("*.json"):
        cond, seed = path.parent.parent.name, path.parent.name
        if path.name.startswith(f"{cond}_{seed}_"):  # the canonical files: the fixture's stray is not this test's
            target = root / "phase3" / "conditions" / cond / seed / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    assert cli.main(["--quiet", "import-results", str(root)]) == 0
    return module_store


def _artifact_root() -> Path:
    """The store's artifact root, as MLflow itself says (the folder above the experiment's artifact location)."""
    location = MlflowClient().get_experiment_by_name(EXPERIMENT).artifact_location
    return Path(location.removeprefix("file://")).parent


def _store_files() -> dict[str, bytes]:
    artifact_root = _artifact_root()
    return {str(p.relative_to(artifact_root)): p.read_bytes() for p in artifact_root.rglob("*") if p.is_file()}


def _refused(capsys, argv: list[str]) -> str:
    assert cli.main(["--quiet", *argv]) == 2, argv
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert len(err) == 1, err  # (export's model imports may log a warning of their own before it)
    return err[0]


def test_study_tables_force_on_the_artifact_root_is_refused_before_anything_is_touched(imported, tmp_path, capsys):
    artifact_root = _artifact_root()
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT)
    before = _store_files()
    assert sum(name.endswith("items.parquet") for name in before) == 3
    link = tmp_path / "link-to-store"
    link.symlink_to(artifact_root, target_is_directory=True)
    run_folder = Path(experiment.artifact_location.removeprefix("file://")) / "0123"
    for out, relation in [
        (artifact_root, "is the tracking store's artifact root"),
        (Path(experiment.artifact_location.removeprefix("file://")), f"is experiment '{EXPERIMENT}'"),
        (run_folder, "lies inside"),
        (artifact_root.parent, "holds the tracking store's database"),
        (link, "is the tracking store's artifact root"),
    ]:
        line = _refused(capsys, ["study-tables", "--experiment", EXPERIMENT, "--out", str(out), "--force"])
        assert relation in line and "name a folder outside it" in line, line
    assert _store_files() == before  # every run's artifacts as they were, nothing logged into them
    assert not MlflowClient().search_runs([experiment.experiment_id], "tags.`langdec.stage` = 'study-tables'")
    assert cli.main(["--quiet", "report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "report")]) == 0
    assert dict(paths.store_places())["the tracking store's artifact root"] == artifact_root  # as MLflow says


def test_the_home_folder_and_the_checkouts_own_files_are_refused_a_new_folder_in_the_checkout_is_not(
    imported, langdec_home, tmp_path, capsys
):
    root = paths.project_root()
    for out, relation in [
        (langdec_home, "is langdec's home folder"),
        (langdec_home / "tables", "lies inside langdec's home folder"),
        (root, "is the langdec checkout"),
        (root / "src" / "tables", "lies inside the checkout's own 'src'"),
        (root / "experiments", "lies inside the checkout's own 'experiments'"),
        (root / ".git" / "x", "lies inside the checkout's own '.git'"),
    ]:
        line = _refused(capsys, ["study-tables", "--experiment", EXPERIMENT, "--out", str(out), "--force"])
        assert relation in line, line
    atomic.refuse_protected(root / "study-tables-output")  # `--out study/` from the checkout, as the README says
    atomic.refuse_protected(tmp_path / "tables")
    assert (root / "src" / "langdec" / "core" / "atomic.py").is_file() and not (root / "src" / "tables").exists()


def test_every_command_that_replaces_a_folder_goes_through_the_same_guard(imported, langdec_home, tmp_path, capsys):
    artifact_root = _artifact_root()
    source = tmp_path / "hello.py"
    source.write_text("def add(a, b):\n    return a + b\n")
    before = _store_files()
    line = _refused(capsys, ["export", str(artifact_root), "--force"])
    assert line.startswith(f"error: DEST {artifact_root}: is the tracking store's artifact root"), line
    line = _refused(capsys, ["transpile", str(source), "--lang", "zh", "--out", str(langdec_home), "--force"])
    assert "is langdec's home folder" in line
    line = _refused(capsys, ["transpile", str(source), "--lang", "zh", "--out", str(artifact_root / "x.parquet")])
    assert "lies inside the tracking store's artifact root" in line
    assert _store_files() == before and langdec_home.is_dir()


def _partials(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".partial")]


@pytest.mark.slow
def test_a_killed_study_tables_leaves_a_partial_folder_that_the_next_run_removes(imported, tmp_path):
    out = tmp_path / "tables"
    env = {**os.environ, "MLFLOW_TRACKING_URI": imported}
    proc = subprocess.Popen(
        [sys.executable, "-m", "langdec.cli", "--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not _partials(tmp_path, "tables") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = _partials(tmp_path, "tables")
    assert left and not out.exists()  # what a SIGKILL leaves: the half-written folder beside the output
    assert cli.main(["--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tables"] and (out / "MANIFEST.json").is_file()


def test_a_live_writers_partial_is_left_alone(tmp_path):
    target = tmp_path / "tables"
    live = tmp_path / f".tables.{atomic._machine()}-{os.getppid()}.abcdefgh.partial"  # our parent: alive
    live.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".tables.{atomic._machine()}-{dead.pid}.abcdefgh.partial"
    gone.mkdir()
    other_machine = tmp_path / f".tables.00000000-{dead.pid}.abcdefgh.partial"
    other_machine.mkdir()
    assert atomic.clean_leftovers(target) == [gone]
    assert live.is_dir() and other_machine.is_dir() and not gone.exists()


def test_replacing_a_linked_out_leaves_no_old_link_and_never_touches_what_it_pointed_at(imported, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("mine")
    link = tmp_path / "lnk"
    link.symlink_to(real, target_is_directory=True)
    assert cli.main(["--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(link), "--force"]) == 0
    assert link.is_dir() and not link.is_symlink() and (link / "MANIFEST.json").is_file()
    assert (real / "keep.txt").read_text() == "mine" and sorted(p.name for p in real.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lnk", "real"]  # no .lnk.old, no .partial


def test_a_replacement_killed_between_its_renames_gets_its_old_output_back(tmp_path):
    target = tmp_path / "tables"
    old = tmp_path / ".tables.old"
    old.mkdir()
    (old / "MANIFEST.json").write_text("{}")
    assert atomic.clean_leftovers(target) == [old]
    assert (target / "MANIFEST.json").read_text() == "{}" and not old.exists()
    old.mkdir()  # both there: the replacement had finished but for removing the old one
    assert atomic.clean_leftovers(target) == [old] and not old.exists() and target.is_dir()
