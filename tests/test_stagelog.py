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
                        "| 2026-12-06T02:10:00Z |")
    assert table[3].startswith("| sat | 2 min (100 s) | 1 (1 interrupted) |")
    assert table[4] == "| evaluate | 8 min (450 s) | 2 (1 job, 1 finished) | f998e2b, abc1234 | 2026-12-07T01:00:00Z |"
    assert table[5] == "| all logged | 4.2 h (15,207 s) | 5 | | |"
    assert stagelog.markdown([]) == "No stage of the remake has been logged yet.\n"


@pytest.mark.parametrize("text, problem", [
    ("stage\tseconds\n", "starts with the header"),
    (f"{stagelog.HEADER}\ntrain\t12\tx\n", "line 2 of the stage log has 3 columns"),
    (f"{stagelog.HEADER}\ntrain\tlong\tx\ta\t2\n", "seconds 'long' is not a number"),
])
def test_a_malformed_log_names_its_problem(text, problem):
    with pytest.raises(ValueError, match=problem):
        stagelog.parse(text)
