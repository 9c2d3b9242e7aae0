"""The reference run's stage log: rows, per-stage totals and the README's table (satnb.report.stagelog)."""

import pytest

from satnb.report import stagelog

LOG = (f"{stagelog.HEADER}\n"
       "train (stopped)\t6657\t2026-12-05T22:32:55Z\t9fed1e3\t2\n"
       "train\t8000\t2026-12-06T02:10:00Z\tf998e2b\t2\n"
       "evaluate (job evaluate:amdim:pixel)\t400\t2026-12-06T02:20:00Z\tf998e2b\t2\n"
       "sat (interrupted)\t100\t2026-12-06T02:30:00Z\tf998e2b\t2\n"
       "evaluate\t50\t2026-12-07T01:00:00Z\tabc1234\t2\n")


def test_rows_keep_how_each_ended_and_stages_sum_them():
    rows = stagelog.parse(LOG)
    assert [(r.stage, r.how) for r in rows] == [("train", "stopped"), ("train", ""),
                                                ("evaluate", "job evaluate:amdim:pixel"), ("sat", "interrupted"),
                                                ("evaluate", "")]
    assert stagelog.totals(rows) == {"train": 14657.0, "evaluate": 450.0, "sat": 100.0}


def test_the_readme_table_lists_stages_in_run_order_with_their_rows():
    table = stagelog.markdown(stagelog.parse(LOG)).splitlines()
    assert table[2] == ("| train | 4.1 h (14,657 s) | 2 (1 stopped, 1 finished) | 9fed1e3, f998e2b "
                        "| 2026-12-06T02:10:00Z |  |")
    assert table[3].startswith("| sat | 2 min (100 s) | 1 (1 interrupted) |")
    assert table[4] == ("| evaluate | 8 min (450 s) | 2 (1 job, 1 finished) | f998e2b, abc1234 | 2026-12-07T01:00:00Z "
                        "|  |")
    assert table[5] == "| all logged | 4.2 h (15,207 s) | 5 |  |  |  |"
    assert stagelog.markdown([]) == "No stage of the remake has been logged yet.\n"


def test_a_stage_started_again_from_nothing_counts_only_its_new_rows():
    text = stagelog.supersede(LOG, "train") + "train (stopped)\t300\t2026-12-08T01:00:00Z\tdd21cef\t2\n"
    rows = stagelog.parse(text)
    assert [(r.how, r.superseded, r.kind) for r in rows if r.stage == "train"] == [
        ("stopped; superseded", True, "stopped"), ("superseded", True, "finished"), ("stopped", False, "stopped")]
    assert stagelog.totals(rows) == {"train": 300.0, "evaluate": 450.0, "sat": 100.0}
    table = stagelog.markdown(rows).splitlines()
    assert table[2] == ("| train | 5 min (300 s) | 1 (1 stopped) | dd21cef | 2026-12-08T01:00:00Z "
                        "| 2: 4.1 h (14,657 s) |")
    assert table[-1] == "| all logged | 14 min (850 s) | 4 |  |  | 4.1 h (14,657 s) |"
    assert stagelog.supersede(text, "train").count("superseded") == 3  # idempotent on superseded rows
    only_old = stagelog.markdown(stagelog.parse(stagelog.supersede(LOG, "sat"))).splitlines()
    assert only_old[3] == "| sat | no row since | 0 |  |  | 1: 2 min (100 s) |"
    with pytest.raises(ValueError, match="no row of stage 'proxy'"):
        stagelog.supersede(LOG, "proxy")


@pytest.mark.parametrize("text, problem", [
    ("stage\tseconds\n", "starts with the header"),
    (f"{stagelog.HEADER}\ntrain\t12\tx\n", "line 2 of the stage log has 3 columns"),
    (f"{stagelog.HEADER}\ntrain\tlong\tx\ta\t2\n", "seconds 'long' is not a number"),
])
def test_a_malformed_log_names_its_problem(text, problem):
    with pytest.raises(ValueError, match=problem):
        stagelog.parse(text)


def test_sync_readme_supersedes_a_stage_and_rewrites_the_table(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "sync_readme", Path(__file__).resolve().parents[1] / "scripts" / "sync_readme.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    log, readme = tmp_path / "stages.tsv", tmp_path / "README.md"
    log.write_text(LOG)
    readme.write_text(f"{stagelog.BEGIN}\nold\n{stagelog.END}\n")
    monkeypatch.setattr(sync, "STAGE_LOG", log)
    monkeypatch.setattr(sync, "README", readme)
    monkeypatch.setattr(sync, "sections", lambda: {"stage times": (stagelog.BEGIN, stagelog.END,
                                                                   stagelog.markdown(stagelog.load(log)))})
    assert sync.main(["--supersede", "train"]) == 0
    assert stagelog.totals(stagelog.load(log)) == {"evaluate": 450.0, "sat": 100.0}
    assert "| train | no row since | 0 |" in readme.read_text()
    assert sync.main(["--check"]) == 0
    with pytest.raises(SystemExit):
        sync.main(["--supersede", "proxy"])
