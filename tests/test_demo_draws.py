"""benchmarks/demo_draws.py's tools for looking at what a rule changed: a draw listed visitor by visitor, and two
saved runs compared draw by draw (the sums hide a draw that got worse behind two that got better)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmarks.demo_draws import compare, draws_of, listing, rows_compared, rows_of


def counts(missed: int, best: int, redundant: int = 0) -> dict:
    return {"visitors": 5, "kept": 6, "missed": missed, "best": best, "redundant": redundant, "repeats": 0,
            "alike": 0, "never_whole": 0}


def run_text(rows: dict[int, dict]) -> str:
    lines = ["| split | method | ... |", "| --- | --- | --- |"]
    lines += [f"<!-- seed {seed} default: {c} -->" for seed, c in rows.items()]
    lines += ["| held out (seeds 1-3) | default | 3 | 15 | ... |", "<!-- 12 s -->"]
    return "\n".join(lines)


def test_two_runs_are_compared_draw_by_draw_and_each_way_counted():
    base = draws_of(run_text({1: counts(1, 3), 2: counts(0, 4), 3: counts(2, 2, 1)}))
    new = draws_of(run_text({1: counts(0, 4), 2: counts(0, 4), 3: counts(3, 2, 0)}))
    assert base[("default", 3)]["redundant"] == 1 and len(base) == 3
    lines = compare(base, new)
    assert lines[0] == "default seed 1: missed 1 -> 0, best 3 -> 4"
    assert lines[1] == "default seed 3: missed 2 -> 3, redundant 1 -> 0"
    assert lines[2] == ("default: 1 draws fewer missed, 1 draws more missed, 0 draws more redundant, "
                        "1 draws fewer redundant, 1 draws more best, 0 draws fewer best")
    assert lines[3] == "3 draws in both, 2 differ"
    assert compare(base, base) == ["3 draws in both, 0 differ"]


def test_a_count_that_only_one_of_two_runs_has_is_no_difference():
    # a run saved before the "faint" counts existed compares with a new one on the counts both have
    base = draws_of(run_text({1: counts(1, 3), 2: counts(0, 4)}))
    new = draws_of(run_text({1: {**counts(1, 3), "faint": 2, "faint_missed": 1}, 2: {**counts(1, 4), "faint": 0}}))
    assert compare(base, new) == ["default seed 2: missed 0 -> 1",
                                  "default: 0 draws fewer missed, 1 draws more missed, 0 draws more redundant, "
                                  "0 draws fewer redundant, 0 draws more best, 0 draws fewer best",
                                  "2 draws in both, 1 differ"]


def test_a_draw_is_listed_visitor_by_visitor_with_its_keeps_whole_or_cut():
    thing = SimpleNamespace
    c = SimpleNamespace(things=[thing(name="red car", visible=(10, 20), whole=(14, 16), repeat=False, alike=False,
                                      faint=False),
                                thing(name="red car", visible=(40, 50), whole=(44, 46), repeat=True, alike=True,
                                      faint=False),
                                thing(name="dog", visible=(60, 70), whole=(62, 68), repeat=False, alike=True,
                                      faint=True)],
                        empty=np.array([i < 10 or 20 <= i < 40 or 50 <= i < 60 or i >= 70 for i in range(80)]))
    run = SimpleNamespace(kept=[0, 15, 19, 30, 65])
    assert listing(c, run) == ["red car: in view 10-19, whole 14-15: 15W 19C",
                               "red car: in view 40-49, whole 44-45 repeat: MISSED",
                               "dog: in view 60-69, whole 62-67 alike faint: 65W",
                               "empty street: 30 (the first frame, 0, aside)"]


def test_events_given_up_are_counted_for_the_missed_visitor_in_view_or_for_one_kept_elsewhere():
    from benchmarks.given_up import for_others, while_in_view
    walker, dog = SimpleNamespace(visible=(100, 130)), SimpleNamespace(visible=(300, 320))
    # (first frame, last frame, the frame that would be kept, its rank, the pool, shows a thing, edge)
    found = [(98, 131, 120, 9, 17, True, 0), (250, 290, 280, 12, 40, True, 0), (300, 330, 330, 8, 30, True, 0)]
    assert while_in_view(found, walker) == [found[0]]
    assert while_in_view(found, dog) == []  # its event's frame came after the dog had left
    assert for_others(found, [walker, dog]) == found[1:]
    assert for_others(found, []) == found


def test_the_default_without_the_pre_gate_is_a_row_only_when_asked_for_by_name():
    # finding 60: whether the fast path keeps the same events is asked draw by draw, beside the default
    assert [m.name for m in rows_of(["default"])] == ["default"]
    assert len(rows_of(None)) == 3 and not any("no pre-gate" in m.name for m in rows_of(None))
    both = rows_of(["default", "default, no"])
    assert [m.name for m in both] == ["default", "default, no pre-gate"]
    assert both[0].gate and not both[1].gate and both[1].cfg == both[0].cfg


def test_a_run_with_a_rule_and_the_commit_before_it_is_compared_row_by_row():
    # --methods default finding --base REV: one saved run holds both rows; --compare-rows lists the draws they differ on
    base_row = "finding 36 default (abc1234)"
    assert [m.rev for m in rows_of(["finding"], "abc1234")] == ["abc1234"]
    assert [m.name for m in rows_of(["finding"], "abc1234")] == [base_row]
    text = run_text({1: counts(1, 3), 2: counts(0, 4)}) + "\n" + "\n".join(
        f"<!-- seed {seed} {base_row}: {c} -->" for seed, c in {1: counts(1, 3), 2: counts(1, 4, 2)}.items())
    assert rows_compared(text) == [f"default against {base_row}:", "default seed 2: missed 1 -> 0, redundant 2 -> 0",
                                   "default: 1 draws fewer missed, 0 draws more missed, 0 draws more redundant, "
                                   "1 draws fewer redundant, 0 draws more best, 0 draws fewer best",
                                   "2 draws in both, 1 differ"]
    assert rows_compared(run_text({1: counts(1, 3)}))[0].startswith("no rows 'finding' and 'default' to compare")
