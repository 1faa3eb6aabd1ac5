"""Tasks of the example pipeline: deploy with `flyte-deploy deploy workflow.py viz_env`."""

from envs import ml_env, prep_env, viz_env
from pipeline.stats import mean, normalize


@prep_env.task
def clean(raw: list[float]) -> list[float]:
    """Drop negative readings and scale the rest into [0, 1]."""
    return normalize([v for v in raw if v >= 0])


@ml_env.task(retries=2)
async def train(raw: list[float], epochs: int = 3) -> dict[str, float]:
    """Fit a toy model: its loss is the mean of the cleaned data, shrinking per epoch."""
    rows = clean(raw)
    return {"loss": mean(rows) / epochs, "rows": float(len(rows))}


@viz_env.task
async def report(raw: list[float]) -> str:
    """Summarize a training run as one line of text."""
    metrics = await train(raw, epochs=2)
    return f"loss={metrics['loss']:.3f} rows={int(metrics['rows'])}"
