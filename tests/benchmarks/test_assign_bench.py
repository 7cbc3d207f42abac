"""benchmarks.assign_bench (tools/bench_assign.py): the cases it runs and the table it prints (fixed rows)."""
from benchmarks import assign_bench


def _impl(seconds, mib, operators, copies, shape_syncs=0):
    return {"median_s": seconds, "peak_bytes": mib * 2**20, "device": "cpu", "operators": operators,
            "host_copies": copies, "shape_syncs": shape_syncs}


ROWS = [
    {"assigner": "atss", "batch": 8, "n": 100, "predictions": "trained", "match": True,
     "ppdet": _impl(2.0, 800, 1500, 40, shape_syncs=3), "ppassign": _impl(0.5, 100, 120, 4)},
    {"assigner": "tal", "batch": 8, "n": 2000, "predictions": "early", "match": None,
     "ppdet": {"error": "skipped: needs ~9.0 GiB, 4.0 GiB available"}, "ppassign": _impl(1.25, 300, 130, 5)},
    {"assigner": "tal", "batch": 1, "n": 2, "predictions": "trained", "match": False,
     "ppdet": _impl(0.010, 3, 90, 2), "ppassign": _impl(0.020, 1, 100, 3, shape_syncs=1)},
]


def test_markdown_table_has_a_header_and_one_line_per_row():
    lines = assign_bench.markdown_table(ROWS).splitlines()
    assert lines[0].startswith("| assigner | B | n | scene | ppdet s/call | ppassign s/call | speed-up |")
    assert len(lines) == 2 + len(ROWS) and all(line.count("|") == lines[0].count("|") for line in lines)


def test_markdown_table_gives_speed_up_and_memory_as_ratios_of_ppdet_to_ppassign():
    line = assign_bench.markdown_table(ROWS).splitlines()[2]
    assert line == ("| ATSS | 8 | 100 | trained | 2.000 | 0.500 | 4.0x | 1500 | 120 | 40 + 3 shape | 4 | 800 | 100 "
                    "| 1/8.0 | yes |")


def test_markdown_table_prints_a_skipped_implementation_and_a_mismatch():
    skipped, mismatch = assign_bench.markdown_table(ROWS).splitlines()[3:]
    assert skipped == ("| TAL | 8 | 2000 | early | skipped: needs ~9.0 GiB, 4.0 GiB available | 1.250 | - | - | 130 "
                       "| - | 5 | - | 300 | - | - |")
    assert mismatch.endswith("| 0.5x | 90 | 100 | 2 | 3 + 1 shape | 3 | 1 | 1/3.0 | NO |")


def test_cases_of_each_group():
    assert assign_bench.cases(["dense"], num_gts=(10, 100)) == [(8, 10, "trained"), (8, 100, "trained")]
    assert assign_bench.cases(["early"]) == [(8, n, "early") for n in assign_bench.EARLY_GTS]
    assert assign_bench.cases(["few"], batches=(1, 32)) == [(b, n, "trained") for b in (1, 32)
                                                            for n in assign_bench.FEW_GTS]
    assert assign_bench.cases(["ties"], batches=(1, 32)) == [(b, n, "ties") for b in (1, 32)
                                                             for n in assign_bench.FEW_GTS]
    assert assign_bench.cases(["crowd"], crowd_gts=(1000, 5000), crowd_batches=(2, 8)) == [
        (2, 1000, "crowd"), (2, 5000, "crowd"), (8, 1000, "crowd"), (8, 5000, "crowd")]


def test_crowd_scenes_hold_small_objects_and_tie_scenes_lattice_objects():
    import numpy as np
    crowd = assign_bench.make_inputs(2, 500, predictions="crowd")["boxes"]
    sides = crowd[..., 2:] - crowd[..., :2]
    assert sides.min() >= 4 - 1e-3 and sides.max() <= assign_bench.CROWD_MAX_SIZE + 1e-3
    ties = assign_bench.make_inputs(2, 50, predictions="ties")
    assert (ties["boxes"] % assign_bench.TIE_LATTICE == 0).all() and ties["scores"].max() < 0.05
    trained = assign_bench.make_inputs(2, 50)["boxes"]
    assert (trained[..., 2:] - trained[..., :2]).max() > assign_bench.CROWD_MAX_SIZE
