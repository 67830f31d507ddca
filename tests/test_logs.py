"""Parsing the reference dlrm_s_pytorch.py text log and our JSONL log."""
import pytest

from dlrmcomp.train import parse_reference_log

REFERENCE = """\
time/loss/accuracy (if enabled):
Finished training it 1024/306969 of epoch 0, 10.53 ms/it, loss 0.520316 (02:14)
Finished training it 2048/306969 of epoch 0, 9.87 ms/it, loss 0.498213
Testing at - 2048/306969 of epoch 0,
 accuracy 77.102 %, best 77.102 %
Finished training it 3072/306969 of epoch 0, 9.90 ms/it, loss 0.470001
Testing at - 3072/306969 of epoch 0, loss 0.466512, recall 0.2719, precision 0.6341, f1 0.3806, ap 0.5301, auc 0.7766, best auc 0.7766, accuracy 78.012 %, best accuracy 78.012 %
Testing at - 4096/306969 of epoch 1,
 loss 0.460000, recall 0.3000, precision 0.6500, f1 0.4100, ap 0.5400, auc 0.7800, best auc 0.7800, accuracy 78.500 %, best accuracy 78.500 %
Finished training it 4096/306969 of epoch 1, 9.80 ms/it, loss 0.4600, accuracy 78.450 %
"""


def test_reference_log_lines_become_rows():
    df = parse_reference_log(REFERENCE)
    train, test = df[df.kind == "train"], df[df.kind == "test"]
    assert list(train.iteration) == [1024, 2048, 3072, 4096]
    assert list(train.loss) == pytest.approx([0.520316, 0.498213, 0.470001, 0.46])
    assert list(train.ms_per_it) == pytest.approx([10.53, 9.87, 9.90, 9.80])
    assert train.accuracy.iloc[-1] == pytest.approx(0.7845)
    assert list(test.iteration) == [2048, 3072, 4096] and list(test.epoch) == [0, 0, 1]
    assert list(test.accuracy) == pytest.approx([0.77102, 0.78012, 0.785])
    assert list(test.auc.dropna()) == pytest.approx([0.7766, 0.78])
    assert test.best_accuracy.iloc[0] == pytest.approx(0.77102)
    assert test.recall.iloc[1] == pytest.approx(0.2719)


def test_reference_log_from_a_file(tmp_path):
    path = tmp_path / "run.log"
    path.write_text(REFERENCE)
    assert len(parse_reference_log(path)) == len(parse_reference_log(REFERENCE)) == 7
