"""Every shipped config validates, and the chain configs are chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path: Path) -> None:
    config = load_config(path)
    assert config.stages, "every shipped config distils at least one student"


def test_shipped_chains_hand_each_student_to_the_next() -> None:
    names = {path.name: load_config(path) for path in CONFIGS}
    assert {"tiny.yaml", "quickstart.yaml", "squad_v2.yaml", "sst2_txtai.yaml"} <= set(names)
    for name in ("tiny.yaml", "quickstart.yaml", "squad_v2.yaml", "sst2_txtai.yaml"):
        stages = names[name].stages
        assert len(stages) >= 2 and all(stage.teacher == "previous" for stage in stages), name
    assert names["tiny.yaml"].augmentation is not None and names["squad_v2.yaml"].augmentation is not None
    assert all(stage.intermediate_layer and stage.baseline for stage in names["tiny.yaml"].stages)
