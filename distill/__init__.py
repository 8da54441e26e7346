"""distill: knowledge distillation of language models.

The core package holds the machine learning only (data, features, models, losses,
metrics, training loops). It never imports Prefect: `tasks/` wraps it and `flows/`
composes the tasks.
"""

__version__ = "0.1.0"
