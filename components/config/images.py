"""Image reference rules shared by the stack config and the policy pack."""
from __future__ import annotations

MUTABLE_TAGS = frozenset({"latest", "nightly", "main", "master"})


def image_is_pinned(image: str) -> bool:
    """A digest, or a tag that is not a moving one (`latest`, `main`, ...); untagged is not pinned."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in MUTABLE_TAGS
