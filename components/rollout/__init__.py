"""Safe rollouts: the gate that decides, step by step, whether a new version keeps taking traffic."""
