"""Stage identity: the name of each stage of a run, derived from the config, in one place.

A stage is a step (fine-tuning the teacher, augmenting, evaluating a model, a student's
intermediate or prediction-layer distillation, its baseline, validating a sweep trial) applied
to a subject (the teacher, a config stage, an evaluated model's label), and for a sweep trial
its number. `name` (`distill_tiny-small`) is how the run's summary, the report, the CLI and
`--refresh` call it; `slug` (`distill-tiny-small`) is the same name spelled as Prefect requires
for task-run names and artifact keys (lowercase letters, digits and dashes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.config import RunConfig

Step = Literal["finetune", "augment", "evaluate", "validate", "intermediate", "distill", "baseline", "export"]


@dataclass(frozen=True)
class StageId:
    step: Step
    subject: str
    trial: int | None = None

    @property
    def name(self) -> str:
        return f"{self.step}_{self.subject}" + ("" if self.trial is None else f"-trial-{self.trial}")

    @property
    def slug(self) -> str:
        return self.name.replace("_", "-").lower()


TEACHER = StageId("finetune", "teacher")
AUGMENT = StageId("augment", "training_data")


def augment_trial(stage: str, trial: int) -> StageId:
    """A sweep trial that sets the augmentation factor augments anew, under its own name."""
    return StageId("augment", f"training_data_{stage}", trial)


def evaluation(label: str) -> StageId:
    """The evaluation of the model `label` names: 'teacher', a stage's student, '<stage>-baseline'."""
    return StageId("evaluate", label)


def baseline_label(stage: str) -> str:
    """The label of a stage's labels-only baseline in the leaderboard and its evaluation's name."""
    return f"{stage}-baseline"


def exported_label(label: str, export_format: str) -> str:
    """The label of a model's export in the leaderboard, e.g. 'minilm-l3-onnx-int8'; its export stage is
    `export_<that>` and its evaluation `evaluate_<that>`."""
    return f"{label}-{export_format}"


def exported_stages(config: RunConfig) -> list[str]:
    """The config stages whose students are exported, in chain order."""
    if config.export is None or not config.export.formats or not config.stages:
        return []
    if config.export.models == "final":
        return [config.stages[-1].name]
    return [stage.name for stage in config.stages]


def stage_ids(config: RunConfig) -> list[StageId]:
    """Every stage the run can have, in the order the flow submits them (each sweep trial's too)."""
    ids = [TEACHER, evaluation("teacher")]
    if config.augmentation is not None and config.stages:
        ids.append(AUGMENT)
    for stage in config.stages:
        trials = [None] if stage.sweep is None else list(range(stage.sweep.trial_count))
        for trial in trials:
            if trial is not None and any(name.startswith("augmentation.") for name in stage.sweep.params):
                ids.append(augment_trial(stage.name, trial))
            if stage.intermediate_layer is not None:
                ids.append(StageId("intermediate", stage.name, trial))
            ids.append(StageId("distill", stage.name, trial))
            if trial is not None:
                ids.append(StageId("validate", stage.name, trial))
        ids.append(evaluation(stage.name))
        if stage.baseline:
            ids += [StageId("baseline", stage.name), evaluation(baseline_label(stage.name))]
    for name in exported_stages(config):
        for export_format in config.export.formats:
            label = exported_label(name, export_format)
            ids += [StageId("export", label), evaluation(label)]
    return ids
