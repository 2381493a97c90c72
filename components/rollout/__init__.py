"""Safe rollouts: the gate that decides, step by step, whether a new version keeps taking traffic.

- `gate`  proceed, wait or roll back, from what the new and the previous version served
"""

__all__ = []
