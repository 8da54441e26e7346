"""Config sections for models and their training: teacher, student, the two distillation steps, one stage."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from distill.config.base import StrictModel
from distill.config.sweep import SweepConfig

# --------------------------------------------------------------------------- models and training


class ModelConfig(StrictModel):
    """A model by hub id, local folder, or short name (`minilm`: the packaged all-MiniLM-L6-v2)."""

    model: str = Field(description="Hub id, local folder, or a short name such as 'minilm'.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(
        default=False, description="Run model code shipped with the checkpoint. Off: it executes arbitrary code."
    )
    allow_pickle_weights: bool = Field(
        default=False, description="Also load pickle (.bin) weights. Off: only safetensors, which cannot run code."
    )


class TrainingConfig(StrictModel):
    """Optimisation settings for one training stage (HF Trainer arguments, named the same way)."""

    epochs: float = Field(default=2.0, gt=0, description="Passes over the training features.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    learning_rate: float = Field(default=5e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")
    batch_size: int = Field(default=16, ge=1, description="Training batch size per device.")
    devices: int = Field(
        default=1,
        ge=1,
        description="Data-parallel processes (torchrun, DDP); global batch = batch_size x devices x "
        "gradient_accumulation_steps. On CUDA one GPU each (nccl); without a GPU N CPU processes (gloo), "
        "which is for testing the multi-device path, not for speed.",
    )
    eval_batch_size: int = Field(
        default=64,
        ge=1,
        description="Inference batch size inside this step (the teacher's logit pass of prediction-layer "
        "distillation); models are scored at evaluation.batch_size.",
    )
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps spent warming up linearly.")
    logging_steps: int = Field(default=10, ge=1, description="Log loss and learning rate every N steps.")
    save_steps: int = Field(default=100, ge=1, description="Checkpoint every N steps; retries resume from the newest.")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept on disk.")


class TeacherConfig(ModelConfig):
    """The large model whose accuracy the students should keep."""

    finetuned: bool = Field(default=False, description="True: already fine-tuned on the task; skip fine-tuning.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)


class FreshStudentConfig(StrictModel):
    """A randomly initialised student with the teacher's architecture family and vocabulary."""

    num_layers: int = Field(ge=1, description="Transformer layers.")
    hidden_size: int = Field(ge=8, description="Width; must be divisible by num_heads.")
    num_heads: int = Field(ge=1, description="Attention heads.")
    intermediate_size: int = Field(ge=8, description="Feed-forward width (BERT uses 4x hidden_size).")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FreshStudentConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class StudentConfig(StrictModel):
    """How the student is made: a pretrained model, selected layers of a bigger one, or a fresh config."""

    model: str | None = Field(default=None, description="A pretrained student: hub id, folder or short name.")
    layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="Keep these encoder layers (0-based, in order) of `source`, DistilBERT-style; "
        "e.g. [0, 1, 2] for the first three.",
    )
    source: str | None = Field(
        default=None, description="Model whose layers are kept. None: this stage's teacher (fine-tuned weights)."
    )
    fresh: FreshStudentConfig | None = Field(
        default=None, description="A new, randomly initialised student of this size with the teacher's vocabulary."
    )

    @model_validator(mode="after")
    def _one_recipe(self) -> StudentConfig:
        recipes = [name for name in ("model", "layers", "fresh") if getattr(self, name) is not None]
        if len(recipes) != 1:
            raise ValueError("set exactly one of student.model, student.layers or student.fresh")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise ValueError(f"student.layers has duplicates: {self.layers}")
        if self.model is not None and self.source is not None:
            raise ValueError("student.source applies to student.layers only")
        return self


class IntermediateTrainingConfig(TrainingConfig):
    learning_rate: float = Field(default=5e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")


class IntermediateLayerConfig(StrictModel):
    """TinyBERT's first step: the student matches the teacher's embeddings, hidden states and attentions."""

    layer_map: Literal["uniform", "last"] | list[tuple[int, int]] = Field(
        default="uniform",
        description="'uniform' (student layer i <- teacher layer round(i L_T / L_S)), 'last' (the teacher's last "
        "L_S layers) or explicit [student, teacher] pairs; 0 is the embedding output.",
    )
    embedding_weight: float = Field(default=1.0, ge=0, description="Weight of the embedding-output MSE.")
    hidden_weight: float = Field(default=1.0, ge=0, description="Weight of the hidden-state MSE (all mapped layers).")
    attention_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the attention loss (mean over pairs of transformer layers). 1 as in TinyBERT: at the "
        "first log the attention term is 9-76x the hidden-state one with MiniLM-L6 (benchmarks/intermediate_terms.py).",
    )
    attention_loss: Literal["mse", "kl"] = Field(
        default="mse",
        description="'mse': MSE between attention scores QK^T/sqrt(d_head) before the softmax, per head (TinyBERT); "
        "'kl': KL(teacher || student) between the attention distributions before dropout (MiniLM). Both over real "
        "tokens only and never after dropout; head means when head counts differ.",
    )
    training: IntermediateTrainingConfig = Field(default_factory=IntermediateTrainingConfig)

    @model_validator(mode="after")
    def _some_weight(self) -> IntermediateLayerConfig:
        if self.embedding_weight == self.hidden_weight == self.attention_weight == 0:
            raise ValueError("at least one of embedding_weight, hidden_weight, attention_weight must be > 0")
        return self


class PredictionTrainingConfig(TrainingConfig):
    learning_rate: float = Field(default=3e-5, gt=0, le=1.0, description="Peak AdamW learning rate.")


class PredictionLayerConfig(StrictModel):
    """Hinton soft-target distillation: L = w T^2 KL(teacher || student) + (1 - w) CE(labels)."""

    temperature: float = Field(default=2.0, gt=0, description="Softmax temperature T for both models.")
    loss_weight: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="w: weight of the soft-target term; 1 needs no labels, 0 is plain training.",
    )
    teacher_cache: bool = Field(
        default=True,
        description="Run the teacher once over the training features and reuse its logits from disk. "
        "False runs it every step (for data that changes every epoch).",
    )
    training: PredictionTrainingConfig = Field(default_factory=PredictionTrainingConfig)


class DistillStageConfig(StrictModel):
    """One student: how it is built and how it learns from its teacher."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stage name (lowercase, digits, dashes).")
    teacher: Literal["previous", "original"] = Field(
        default="previous",
        description="'previous': the distilled student of the stage before (the run's teacher for the first "
        "stage), a progressive chain; 'original': the run's teacher, to compare against direct distillation.",
    )
    student: StudentConfig
    intermediate_layer: IntermediateLayerConfig | None = Field(
        default=None, description="Run TinyBERT intermediate-layer distillation first (then prediction-layer)."
    )
    prediction_layer: PredictionLayerConfig = Field(default_factory=PredictionLayerConfig)
    baseline: bool = Field(
        default=False, description="Also train the same student without distillation, to report the lift."
    )
    sweep: SweepConfig | None = Field(
        default=None,
        description="Try several settings for this stage (each trial a cached stage run); the trial with the best "
        "validation metric is the stage's student. Needs validation data (data.validation or validation_fraction).",
    )
    min_teacher_metric: float | None = Field(
        default=None,
        description="Fail early when the teacher's metric (accuracy 0-1, or SQuAD F1 0-100) is below this: on the "
        "validation set when the run has one (data.validation or data.validation_fraction), else on eval.",
    )
