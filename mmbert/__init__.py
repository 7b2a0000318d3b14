"""mmbert: the library of the mmBERT reproduction (model, schedules, data, training, merge,
evaluation, benchmarks). It knows nothing of Prefect; each stage is `python -m mmbert.<stage>`."""

__version__ = "0.1.0"
