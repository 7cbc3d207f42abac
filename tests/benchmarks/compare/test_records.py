"""benchmarks.compare: a run's metrics and its table row."""
from benchmarks import compare


LOG = """\
[11/21 09:21:53] ppdet.engine INFO: Epoch: [0] [0/2] learning_rate: 0.000200 loss: 4.17 loss_cls: 0.55 eta: 0:00:04 batch_cost: 2.0883 data_cost: 0.02 ips: 3.8 images/s
[11/21 09:21:55] ppdet.engine INFO: Epoch: [0] [1/2] learning_rate: 0.000290 loss_cls: 1.05 loss: 4.13 eta: 0:00:01 batch_cost: 1.5 data_cost: 0.0 ips: 4.1 images/s
[11/21 09:21:56] ppdet.engine WARNING: Evaluation results empty, this may be due to training iterations being too few
[11/21 09:21:57] ppdet.engine INFO: Epoch: [1] [0/2] learning_rate: 0.000300 loss: 3.00 eta: 0:00:01 batch_cost: 1.0 data_cost: 0.0 ips: 4.1 images/s
""" + "".join(f" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {v}\n"
              for v in ("0.100", "0.200", "0.300", "0.010", "0.020", "-1.000", "0.1", "0.1", "0.1", "0.1", "0.1",
                        "0.1")) + "ppassign: training finished in 12 s; weights: x\n"


def test_parse_train_log_reads_losses_costs_and_evaluations():
    parsed = compare.parse_train_log(LOG)
    assert parsed["loss"] == [(0, 0, 2, 4.17), (0, 1, 2, 4.13), (1, 0, 2, 3.0)]
    assert parsed["batch_cost"] == [2.0883, 1.5, 1.0]
    assert [e for e, _ in parsed["evals"]] == [0, 1]
    assert parsed["evals"][0][1] == [0.0] * 12
    assert parsed["evals"][1][1][:3] == [0.1, 0.2, 0.3]
    row = compare.summarize_run(parsed, iterations=4)
    assert (row["AP"], row["APl"], row["sec_per_iter"], row["iterations"], row["train_seconds"]) == \
        (0.1, -1.0, 1.5, 4, 12.0)
    assert "| x | 10.0 | 20.0 | 30.0 | 1.0 | 2.0 | n/a | 1.50 | 12 | 4 |" in \
        compare.markdown_table([dict(row, label="x")])


def test_parse_train_log_collects_the_box_regression_terms_only():
    lines = "".join(f"[x] ppdet.engine INFO: Epoch: [0] [{i}/3] loss_cls: 0.5 loss_box: {box} loss_quality: "
                    f"0.7 loss: 2.0 batch_cost: 0.5\n" for i, box in enumerate(("0.9", "0.8", "0.7")))
    parsed = compare.parse_train_log(lines)
    assert parsed["regression"] == {"loss_box": [0.9, 0.8, 0.7]}
    assert compare.parse_train_log(LOG)["regression"] == {}


def test_stalled_regression_flags_a_flat_box_loss():
    # ppdet's FCOSHead with a dead regression branch: loss_box stays at ~0.93 (measured in docs/analysis.md).
    flat = [0.933, 0.925, 0.919, 0.904, 0.920] + [0.93, 0.928, 0.925, 0.931, 0.927]
    falling = [0.946, 0.887, 0.756, 0.716, 0.642] + [0.6, 0.58, 0.56, 0.55, 0.53]
    assert compare.stalled_regression({"loss_box": flat, "loss_loc": falling}) == ["loss_box"]


def test_stalled_regression_leaves_short_logs_and_small_but_real_drops_alone():
    assert compare.stalled_regression({"loss_box": [0.9] * 9}) == []  # fewer than 2 * window values
    assert compare.stalled_regression({"loss_iou": [1.0] * 5 + [0.96] * 5}) == []  # 4% down
    assert compare.stalled_regression({"loss_iou": [1.0] * 5 + [0.98] * 5}) == ["loss_iou"]  # 2% down


def _coco_block(ap):
    return "".join(f" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = {v}\n"
                   for v in [ap] + ["0.1"] * 11)


def _line(epoch, step, box):
    return (f"[x] ppdet.engine INFO: Epoch: [{epoch}] [{step}/2] loss_box: {box} loss: 2.0 batch_cost: "
            f"{epoch + 1}.0\n")


def test_parse_train_log_of_a_resumed_run_drops_what_the_first_run_logged_after_its_checkpoint():
    # First run: epochs 0-1 with an evaluation after each, killed during epoch 2 (checkpoint after epoch 2 = "1").
    first = _line(0, 0, 0.9) + _line(0, 1, 0.8) + _coco_block("0.100") + _line(1, 0, 0.7) + _line(1, 1, 0.6) + \
        _coco_block("0.200") + _line(2, 0, 0.5)
    second = "compare: resumed after epoch 2 from run/ckpt/config/1\n" + _line(2, 0, 0.55) + _line(2, 1, 0.45) + \
        _coco_block("0.300") + "ppassign: training finished in 7 s; weights: x\n"
    parsed = compare.parse_train_log(first + second)
    assert [(e, s) for e, s, _, _ in parsed["loss"]] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert parsed["regression"] == {"loss_box": [0.9, 0.8, 0.7, 0.6, 0.55, 0.45]}
    assert parsed["batch_cost"] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert [(e, stats[0]) for e, stats in parsed["evals"]] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert parsed["resumed"] == [2] and parsed["seconds"] == 7.0
    assert compare.parse_train_log(LOG)["resumed"] == []


def test_parse_train_log_drops_a_half_printed_evaluation_of_the_killed_run():
    log = _line(0, 0, 0.9) + _coco_block("0.100")[:200] + "\ncompare: resumed after epoch 0 from c/0\n" + \
        _line(0, 0, 0.8) + _coco_block("0.200")
    parsed = compare.parse_train_log(log)
    assert [(e, stats[0]) for e, stats in parsed["evals"]] == [(0, 0.2)]
    assert parsed["loss"] == [(0, 0, 2, 2.0)]
