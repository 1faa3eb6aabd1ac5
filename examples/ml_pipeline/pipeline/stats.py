"""Plain helper code the tasks import; it lands in the code bundle (loaded_modules)."""


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def normalize(values: list[float]) -> list[float]:
    top = max((abs(v) for v in values), default=0.0) or 1.0
    return [v / top for v in values]
