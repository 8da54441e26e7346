"""Build students: a pretrained model, or selected encoder layers of a bigger one (DistilBERT-style).

Layer selection is how real pretrained students are made where only one pretrained
checkpoint exists: the student keeps the teacher's embeddings, the chosen transformer
layers and the task head, so it starts close to the teacher instead of from noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from distill.config import FreshStudentConfig, StudentConfig
from distill.errors import ModelError
from distill.models.loading import AUTO_CLASSES, ModelTask, load_model, load_model_config, load_tokenizer

# Where encoder layers live, by architecture family: (container attribute path, list attribute).
_LAYER_PATHS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"), ("", "layers"))


@dataclass(frozen=True)
class StudentPlan:
    """What a `student:` section builds, worked out from names alone: preflight checks it before any
    compute (from configs and tokenizers), `build_student` builds it. One reading of the section, two uses."""

    recipe: Literal["model", "layers", "fresh"]
    base: str  # the model it starts from: its weights (model, layers) or its config (fresh); its tokenizer in all
    layers: tuple[int, ...] | None  # layers: the encoder layers kept, in order
    fresh: FreshStudentConfig | None  # fresh: the sizes
    label: str  # names it in messages
    source: str | None = None  # layers: the `student.source` the section names, if any

    @property
    def from_teacher(self) -> bool:
        """Whether it starts from the stage's teacher (a fresh student, or layers kept of no other source)."""
        return self.recipe == "fresh" or (self.recipe == "layers" and self.source is None)


def plan_student(spec: StudentConfig, teacher: str) -> StudentPlan:
    """The plan for `spec` under `teacher` (the default source of kept layers, and a fresh student's family)."""
    if spec.fresh is not None:
        f = spec.fresh
        label = f"fresh {f.num_layers}x{f.hidden_size} ({f.num_heads} heads) student of '{teacher}'"
        return StudentPlan("fresh", teacher, None, f, label)
    if spec.model is not None:
        return StudentPlan("model", spec.model, None, None, spec.model)
    source = spec.source or teacher
    layers = tuple(spec.layers or ())
    return StudentPlan("layers", source, layers, None, f"layers {list(layers)} of '{source}'", spec.source)


# The transformers config attributes a fresh student sets (BERT's names, shared by its family).
FRESH_SIZE_ATTRIBUTES = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")


def fresh_sizes(spec: FreshStudentConfig) -> dict[str, int]:
    values = (spec.num_layers, spec.hidden_size, spec.num_heads, spec.intermediate_size)
    return dict(zip(FRESH_SIZE_ATTRIBUTES, values, strict=True))


def check_fresh_family(config: Any, family: str) -> None:
    """A fresh student copies `family`'s config (`family` names it, e.g. "model 'x'"): it must have the sizes."""
    missing = [name for name in FRESH_SIZE_ATTRIBUTES if not hasattr(config, name)]
    if missing:
        raise ModelError(f"{family}: its config has no {missing[0]}, so a fresh student cannot be sized")


def check_kept_layers(layers: tuple[int, ...] | list[int], available: int, source: str) -> None:
    """Every kept layer exists in `source` (named for messages, e.g. "model 'x'"), which has `available` layers."""
    out_of_range = [index for index in layers if index >= available]
    if out_of_range:
        raise ModelError(
            f"student.layers {list(layers)}: {source} has {available} layer{'s' if available != 1 else ''} "
            f"(0..{available - 1}), so {out_of_range} cannot be kept"
        )


def _layer_list(model: Any, name: str) -> tuple[Any, str, torch.nn.ModuleList]:
    base = model.base_model
    for container_path, attribute in _LAYER_PATHS:
        container = base
        for part in filter(None, container_path.split(".")):
            container = getattr(container, part, None)
        layers = getattr(container, attribute, None) if container is not None else None
        if isinstance(layers, torch.nn.ModuleList):
            return container, attribute, layers
    raise ModelError(f"model '{name}': cannot find its encoder layers to select from ({type(model).__name__})")


def num_layers(model: Any, name: str = "model") -> int:
    return len(_layer_list(model, name)[2])


def select_layers(model: Any, layers: list[int], name: str = "model") -> Any:
    """Keep only `layers` (0-based, in the given order) of `model`'s encoder, in place; returns the model."""
    container, attribute, current = _layer_list(model, name)
    check_kept_layers(layers, len(current), f"model '{name}'")
    kept = torch.nn.ModuleList([current[index] for index in layers])
    for new_index, layer in enumerate(kept):
        # Attention modules may carry their layer index (used for caches and per-layer config).
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    setattr(container, attribute, kept)
    model.config.num_hidden_layers = len(layers)
    return model


def fresh_model(
    teacher: str,
    spec: FreshStudentConfig,
    task: ModelTask,
    *,
    id2label: dict[int, str] | None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """A randomly initialised model of the teacher's family and vocabulary, at the requested size."""
    import transformers

    config = load_model_config(teacher, trust_remote_code=trust_remote_code)
    check_fresh_family(config, f"model '{teacher}'")
    for name, value in fresh_sizes(spec).items():
        setattr(config, name, value)
    if task == "classification" and id2label is not None:
        config.id2label, config.label2id = dict(id2label), {v: k for k, v in id2label.items()}
        config.num_labels = len(id2label)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return getattr(transformers, AUTO_CLASSES[task]).from_config(config, trust_remote_code=trust_remote_code)


def build_student(
    spec: StudentConfig,
    teacher: str,
    task: ModelTask,
    *,
    id2label: dict[int, str] | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> tuple[Any, Any, str]:
    """The student model, its tokenizer, and a name for messages.

    Args:
        spec: the stage's `student:` section.
        teacher: the stage's teacher (model folder or id): the default source of selected layers,
            and the architecture and vocabulary of a fresh student.
        task: head to build ("qa" or "classification").
        id2label: classification labels, so the student's head matches the data.
        attn_implementation: None for the default (SDPA); intermediate-layer distillation passes
            `distill.models.attention.RECORDING_ATTENTION`, which records attention scores.
    """
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code, "attn_implementation": attn_implementation}
    if task == "classification" and id2label is not None:
        options["id2label"] = id2label
    plan = plan_student(spec, teacher)
    if plan.fresh is not None:
        model = fresh_model(
            plan.base,
            plan.fresh,
            task,
            id2label=id2label,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
    else:
        model, _ = load_model(plan.base, task, **options)
        if plan.layers is not None:
            select_layers(model, list(plan.layers), plan.base)
    return model, load_tokenizer(plan.base, trust_remote_code=trust_remote_code), plan.label


def check_same_vocabulary(teacher_name: str, teacher_tokenizer: Any, student_name: str, student_tokenizer: Any) -> None:
    """Features are tokenized once and fed to both models, so both must map text to the same ids."""
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab != student_vocab:
        only_teacher = len(teacher_vocab.keys() - student_vocab.keys())
        only_student = len(student_vocab.keys() - teacher_vocab.keys())
        raise ModelError(
            f"teacher '{teacher_name}' and student '{student_name}' have different vocabularies "
            f"({len(teacher_vocab)} vs {len(student_vocab)} tokens; {only_teacher} only in the teacher, "
            f"{only_student} only in the student); distillation needs one tokenizer for both"
        )
