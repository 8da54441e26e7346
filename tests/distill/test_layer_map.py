"""Layer mappings between student and teacher depths."""

from __future__ import annotations

import pytest

from distill.errors import ConfigError
from distill.training.layer_map import last_map, resolve_layer_map, uniform_map


@pytest.mark.parametrize(
    ("student", "teacher", "expected"),
    [
        (3, 6, [(0, 0), (1, 2), (2, 4), (3, 6)]),
        (4, 6, [(0, 0), (1, 2), (2, 3), (3, 5), (4, 6)]),  # 1.5 -> 2 and 4.5 -> 5: halves round up
        (4, 12, [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]),
        (4, 4, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]),
        (2, 3, [(0, 0), (1, 2), (2, 3)]),  # no divisibility needed
    ],
)
def test_uniform(student: int, teacher: int, expected: list[tuple[int, int]]) -> None:
    assert uniform_map(student, teacher) == expected
    assert resolve_layer_map("uniform", student, teacher) == expected


def test_last_and_explicit() -> None:
    assert last_map(3, 6) == [(0, 0), (1, 4), (2, 5), (3, 6)]
    with pytest.raises(ConfigError, match="the student has 7 layers, the teacher only 6"):
        last_map(7, 6)
    assert resolve_layer_map([(2, 6), (0, 0), (1, 3)], 2, 6) == [(0, 0), (1, 3), (2, 6)]
    with pytest.raises(ConfigError, match=r"pair \[1, 9\] is outside"):
        resolve_layer_map([(1, 9)], 2, 6)
    with pytest.raises(ConfigError, match="appears twice"):
        resolve_layer_map([(1, 2), (1, 3)], 2, 6)
