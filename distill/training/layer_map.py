"""Which student layer learns from which teacher layer (TinyBERT's mapping function), as data.

Layers are numbered as in Hugging Face `hidden_states`: 0 is the embedding output and
i = 1..L the output of transformer layer i. Attention maps exist for layers 1..L. The
embedding pair (0, 0) is always part of a mapping.
"""

from __future__ import annotations

import math

from distill.errors import ConfigError

LayerPair = tuple[int, int]  # (student layer, teacher layer)


def uniform_map(student_layers: int, teacher_layers: int) -> list[LayerPair]:
    """Student layer i learns from teacher layer round(i * L_T / L_S), halves rounded up; any depths."""
    _check_depths(student_layers, teacher_layers)
    return [(0, 0)] + [(i, math.floor(i * teacher_layers / student_layers + 0.5)) for i in range(1, student_layers + 1)]


def last_map(student_layers: int, teacher_layers: int) -> list[LayerPair]:
    """The student's layers learn from the teacher's last L_S layers, in order."""
    _check_depths(student_layers, teacher_layers)
    if student_layers > teacher_layers:
        raise ConfigError(
            f"layer_map 'last': the student has {student_layers} layers, the teacher only {teacher_layers}"
        )
    offset = teacher_layers - student_layers
    return [(0, 0)] + [(i, offset + i) for i in range(1, student_layers + 1)]


def resolve_layer_map(
    spec: str | list[list[int]] | list[tuple[int, int]], student_layers: int, teacher_layers: int
) -> list[LayerPair]:
    """A named mapping or an explicit list of [student, teacher] pairs, checked against both depths."""
    if spec == "uniform":
        return uniform_map(student_layers, teacher_layers)
    if spec == "last":
        return last_map(student_layers, teacher_layers)
    if isinstance(spec, str):
        raise ConfigError(f"layer_map: unknown mapping {spec!r} (use 'uniform', 'last' or a list of pairs)")
    pairs = [(int(s), int(t)) for s, t in spec]
    for student, teacher in pairs:
        if not 0 <= student <= student_layers or not 0 <= teacher <= teacher_layers:
            raise ConfigError(
                f"layer_map: pair [{student}, {teacher}] is outside the student's 0..{student_layers} "
                f"or the teacher's 0..{teacher_layers} layers"
            )
    students = [student for student, _ in pairs]
    if len(set(students)) != len(students):
        raise ConfigError(f"layer_map: a student layer appears twice in {pairs}")
    return sorted(pairs)


def _check_depths(student_layers: int, teacher_layers: int) -> None:
    if student_layers < 1 or teacher_layers < 1:
        raise ConfigError(f"layer_map: depths must be positive (student {student_layers}, teacher {teacher_layers})")
