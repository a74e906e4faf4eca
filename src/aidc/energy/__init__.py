"""Energy, cost and carbon: power models, per-job accounting, tariffs, power budgets and power-cap policy (pure)."""
