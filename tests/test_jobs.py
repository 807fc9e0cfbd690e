"""Worker lanes: jobs run one after another in one worker; a crash fails that job alone."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from edge_pipeline.building.jobs import Job, run_lane
from edge_pipeline.errors import StageFailed
from edge_pipeline.records import SourceJob
from edge_pipeline.types import SourceSpec


def test_a_crash_fails_its_job_alone_and_the_rest_run_in_a_fresh_worker(tmp_path: Path) -> None:
    (tmp_path / "crashing.py").write_text("import os\nos.abort()\n")
    crash = SourceJob(SourceSpec(example=None, model="crashing:make", base_dir=str(tmp_path)), tmp_path / "w0")
    jobs = [Job("source", crash, tmp_path / "j0", "crash"), Job("no-such-stage", None, tmp_path / "j1", "one"),
            Job("no-such-stage", None, tmp_path / "j2", "two")]
    seen: list[int] = []
    outcomes = run_lane(jobs, timeout_s=120, on_done=lambda i, _: seen.append(i))
    assert seen == [0, 1, 2]
    assert all(isinstance(o, StageFailed) for o in outcomes)
    assert "crashed with SIGABRT" in str(outcomes[0])
    assert all("no-such-stage" in str(o) for o in outcomes[1:])
    assert (tmp_path / "j1" / "worker.log").is_file()          # the fresh worker's log
    assert not (tmp_path / "j2" / "worker.log").exists()       # job two ran in that same worker


def test_a_hung_job_times_out_without_stopping_the_lane(tmp_path: Path) -> None:
    (tmp_path / "hanging.py").write_text("import time\ntime.sleep(60)\n")
    hang = SourceJob(SourceSpec(example=None, model="hanging:make", base_dir=str(tmp_path)), tmp_path / "w0")
    outcomes = run_lane([Job("source", hang, tmp_path / "j0", "hang"), Job("x", None, tmp_path / "j1", "next")],
                        timeout_s=3)
    assert "timed out after 3 s" in str(outcomes[0]) and "'x'" in str(outcomes[1])


def test_a_crashed_workers_temporary_files_go_with_it_and_a_killed_builds_are_swept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's TMPDIR is its own folder, removed however the worker ends; one left by a build that no longer
    runs is removed by the next, one of a running build is not."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    dead, live = temp / "edgepipe-job-old-4194305", temp / f"edgepipe-job-new-{os.getppid()}"
    dead.mkdir()
    live.mkdir()
    (tmp_path / "crashing.py").write_text("import os, tempfile\n"
                                          "open(os.path.join(tempfile.gettempdir(), 'left'), 'w').write('x')\n"
                                          "os.abort()\n")
    crash = SourceJob(SourceSpec(example=None, model="crashing:make", base_dir=str(tmp_path)), tmp_path / "w0")
    (outcome,) = run_lane([Job("source", crash, tmp_path / "j0", "crash")], timeout_s=120)
    assert "crashed with SIGABRT" in str(outcome)
    assert sorted(p.name for p in temp.iterdir()) == [live.name]
