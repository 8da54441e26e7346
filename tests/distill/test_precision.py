"""Precision: `auto` follows the hardware, bf16 really trains and infers under autocast, and the choice is recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import DataCollatorWithPadding, set_seed

from distill import precision as precision_module
from distill.config import PredictionTrainingConfig, parse_config
from distill.models.inference import forward_in_batches
from distill.models.loading import load_model, load_tokenizer
from distill.precision import autocast, resolve_precision
from distill.training.trainer import train, training_arguments
from tests.distill.test_prediction_distillation import sentiment_features

TRAINING = PredictionTrainingConfig(epochs=1, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, save_steps=1000)


def test_explicit_precision_is_kept() -> None:
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize(("flags", "expected"), [((), "fp32"), (("amx_bf16",), "bf16"), (("avx512_bf16",), "bf16")])
def test_auto_on_cpu_follows_the_bf16_instructions(
    flags: tuple[str, ...], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_flags", lambda: flags)
    assert resolve_precision("auto", "cpu") == expected


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    expected = tuple(sorted({"amx_bf16", "avx512_bf16"} & set(flags)))
    assert precision_module.cpu_bf16_flags() == expected


def test_config_defaults_to_auto_and_rejects_unknown() -> None:
    base = {"name": "r", "data": {"task": "qa", "eval": "x.json"}, "teacher": {"model": "m"}}
    assert parse_config(base).precision == "auto"
    with pytest.raises(Exception, match="precision"):
        parse_config({**base, "precision": "fp16"})


@contextlib.contextmanager
def dtypes_of_linear_outputs(model: torch.nn.Module) -> Iterator[list[torch.dtype]]:
    """The dtype of every Linear output of `model` while the context is open."""
    seen: list[torch.dtype] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, output: seen.append(output.dtype))
        for module in model.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_runs_at_the_requested_precision(precision: str, tiny_classifier: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_classifier))
    features = sentiment_features(tokenizer)
    set_seed(0)
    model, _ = load_model(str(tiny_classifier), "classification")
    with dtypes_of_linear_outputs(model) as seen:
        summary = train(
            model,
            features,
            TRAINING,
            checkpoint_dir=tmp_path / "checkpoints",
            seed=0,
            data_collator=DataCollatorWithPadding(tokenizer),
            precision=precision,
        )
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen and set(seen) == {expected}
    assert summary.precision == precision and summary.as_metrics()["precision"] == precision
    # Weights stay fp32 under autocast: only the matmuls run in bf16.
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_training_arguments_carry_bf16_on_cpu(tmp_path: Path) -> None:
    args = training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, precision="bf16")
    assert args.bf16 and args.use_cpu == (not torch.cuda.is_available())
    assert not training_arguments(TRAINING, tmp_path, seed=0, show_progress=False, precision="fp32").bf16


def test_inference_in_bf16_close_to_fp32(tiny_classifier: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_classifier))
    model, _ = load_model(str(tiny_classifier), "classification")
    features = dict(tokenizer(["a good film", "a bad film"], padding=True))
    fp32 = forward_in_batches(model, features, ("logits",), batch_size=2, precision="fp32")["logits"]
    with dtypes_of_linear_outputs(model) as seen:
        bf16 = forward_in_batches(model, features, ("logits",), batch_size=2, precision="bf16")["logits"]
    assert set(seen) == {torch.bfloat16}
    assert fp32.dtype == bf16.dtype == "float32"
    assert abs(fp32 - bf16).max() < 0.1  # bf16 keeps ~3 significant digits


def test_autocast_is_a_no_op_for_fp32() -> None:
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")


def test_per_step_teacher_runs_at_the_run_precision(tiny_classifier: Path, tmp_path: Path) -> None:
    # teacher_cache: false runs the teacher inside the student's training step; accelerate wraps only the
    # student's forward in autocast, so the teacher must enter it itself.
    from distill.training.distillation import PredictionDistillationTrainer

    tokenizer = load_tokenizer(str(tiny_classifier))
    features = sentiment_features(tokenizer)
    set_seed(0)
    student, _ = load_model(str(tiny_classifier), "classification")
    teacher, _ = load_model(str(tiny_classifier), "classification")
    with dtypes_of_linear_outputs(teacher) as seen:
        train(
            student,
            features,
            TRAINING,
            checkpoint_dir=tmp_path / "checkpoints",
            seed=0,
            data_collator=DataCollatorWithPadding(tokenizer),
            trainer_class=PredictionDistillationTrainer,
            trainer_kwargs={"task": "classification", "temperature": 2.0, "loss_weight": 0.5, "teacher_model": teacher},
            keep_extra_columns=True,
            precision="bf16",
        )
    assert seen and set(seen) == {torch.bfloat16}
