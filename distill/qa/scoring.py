"""SQuAD figures for a model's predictions, exactly as the official v2.0 script gives them on the files we write.

Evaluation writes the official script's two inputs: each question's best span
(`predictions.json`) and its no-answer odds (`null_odds.json`, the `--na-prob-file`). The
abstention is the script's: a question abstains when its odds exceed `--na-prob-thresh`,
which is `null_score_diff_threshold`. So every figure here is the script run on those files:

- v2 (`version_2_with_negative`): `exact`, `f1`, HasAns/NoAns and `best_*` at
  `null_threshold` (recorded under that key);
- v1.1 (or v2 data scored without abstention): nothing abstains; the script without a
  na-prob file (no `best_*`);
- tuned (v2, with validation data): the threshold is the official `best_f1_thresh` on the
  validation set, and the eval figures at it are added as `tuned_*` beside the headline ones.
  One correction: when abstaining everywhere scores best, the official sweep reports 0.0, which
  is meant for probabilities (where 0 abstains on almost everything) but is an arbitrary point
  on odds; there the tuned threshold is set just below every validation odds value instead, so
  it means what the sweep found. The official value is kept as `validation_best_f1_thresh`.
"""

from __future__ import annotations

from typing import Any

from distill.data.squad import SquadDataset
from distill.evaluation.metrics.squad import score_squad
from distill.qa.postprocess import QAPredictions

# The official keys reported again at the tuned threshold, as `tuned_<key>`.
TUNED_KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")


def score_predictions(
    dataset: SquadDataset, predictions: QAPredictions, *, version_2_with_negative: bool, null_threshold: float
) -> dict[str, Any]:
    """The official script's output on the written files, plus `null_threshold` (v2 only): the threshold applied."""
    if not version_2_with_negative:
        return score_squad(dataset, predictions.best_spans)
    metrics: dict[str, Any] = score_squad(
        dataset, predictions.best_spans, predictions.null_odds, na_prob_thresh=null_threshold
    )
    metrics["null_threshold"] = null_threshold
    return metrics


def tuned_threshold(validation_metrics: dict[str, Any], validation_predictions: QAPredictions) -> float:
    """The no-answer threshold that maximises F1 on validation, as a threshold on odds."""
    # The official sweep starts from "abstain everywhere" (every unanswerable question right) and moves the
    # threshold only on a strict improvement: a best_f1 equal to that start means nothing beat abstaining.
    abstain_everywhere = 100.0 * validation_metrics.get("NoAns_total", 0) / validation_metrics["total"]
    if validation_metrics["best_f1"] > abstain_everywhere or not validation_predictions.null_odds:
        return float(validation_metrics["best_f1_thresh"])
    return min(validation_predictions.null_odds.values()) - 1.0


def tuned_metrics(
    dataset: SquadDataset,
    predictions: QAPredictions,
    validation_metrics: dict[str, Any],
    validation_predictions: QAPredictions,
) -> dict[str, Any]:
    """Eval figures at the threshold that maximises F1 on validation (`validation_metrics` from score_predictions).

    Keys: `tuned_null_threshold` (see `tuned_threshold`) and `tuned_<key>` for each of TUNED_KEYS
    present. The validation figures it comes from (`best_f1`, the official `best_f1_thresh`) are
    reported beside them as `validation_*` (see `distill.evaluation.evaluate.evaluate_qa`).
    """
    threshold = tuned_threshold(validation_metrics, validation_predictions)
    at_threshold = score_squad(dataset, predictions.best_spans, predictions.null_odds, na_prob_thresh=threshold)
    return {
        "tuned_null_threshold": threshold,
        **{f"tuned_{key}": at_threshold[key] for key in TUNED_KEYS if key in at_threshold},
    }
