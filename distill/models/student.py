"""Build students: a pretrained model, or selected encoder layers of a bigger one (DistilBERT-style).

Layer selection is how real pretrained students are made where only one pretrained
checkpoint exists: the student keeps the teacher's embeddings, the chosen transformer
layers and the task head, so it starts close to the teacher instead of from noise.
"""

from __future__ import annotations

from typing import Any

import torch

from distill.config import FreshStudentConfig, StudentConfig
from distill.errors import ModelError
from distill.models.loading import ModelTask, load_model, load_model_config, load_tokenizer

# Where encoder layers live, by architecture family: (container attribute path, list attribute).
_LAYER_PATHS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"), ("", "layers"))


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
    out_of_range = [index for index in layers if index >= len(current)]
    if out_of_range:
        raise ModelError(
            f"student.layers {layers}: model '{name}' has {len(current)} layers (0..{len(current) - 1}), "
            f"so {out_of_range} cannot be kept"
        )
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
    sizes = {
        "num_hidden_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_heads,
        "intermediate_size": spec.intermediate_size,
    }
    missing = [name for name in sizes if not hasattr(config, name)]
    if missing:
        raise ModelError(f"model '{teacher}': its config has no {missing[0]}, so a fresh student cannot be sized")
    for name, value in sizes.items():
        setattr(config, name, value)
    if task == "classification" and id2label is not None:
        config.id2label, config.label2id = dict(id2label), {v: k for k, v in id2label.items()}
        config.num_labels = len(id2label)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    auto = {
        "qa": transformers.AutoModelForQuestionAnswering,
        "classification": transformers.AutoModelForSequenceClassification,
        "base": transformers.AutoModel,
    }[task]
    return auto.from_config(config, trust_remote_code=trust_remote_code)


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
    if spec.fresh is not None:
        model = fresh_model(
            teacher,
            spec.fresh,
            task,
            id2label=id2label,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
        f = spec.fresh
        label = f"fresh {f.num_layers}x{f.hidden_size} ({f.num_heads} heads) student of '{teacher}'"
        return model, load_tokenizer(teacher, trust_remote_code=trust_remote_code), label
    if spec.model is not None:
        model, _ = load_model(spec.model, task, **options)
        return model, load_tokenizer(spec.model, trust_remote_code=trust_remote_code), spec.model
    source = spec.source or teacher
    model, _ = load_model(source, task, **options)
    select_layers(model, list(spec.layers or []), source)
    label = f"layers {spec.layers} of '{source}'"
    return model, load_tokenizer(source, trust_remote_code=trust_remote_code), label


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
