"""Image references: the OCI/distribution reference grammar, and what counts as pinned.

Shared by the stack config and the policy pack. The grammar is distribution/reference's:
`[domain[:port]/]path[:tag][@sha256:<64 hex>]`, path components lower case.
"""
from __future__ import annotations

import re

__all__ = ["MUTABLE_TAGS", "REFERENCE", "MAX_NAME", "parse_reference", "image_is_pinned", "check_pinned"]

MUTABLE_TAGS = frozenset({"latest", "nightly", "main", "master"})
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
REFERENCE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*))"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")
MAX_NAME = 255


def parse_reference(image: str) -> dict:
    """The parts of an image reference, or ValueError saying what the grammar accepts."""
    match = REFERENCE.match(image) if isinstance(image, str) else None
    if not match:
        hint = ""
        if isinstance(image, str) and "@" in image and not re.search(r"@sha256:[0-9a-f]{64}$", image):
            hint = " (a digest is 'sha256:' and 64 lower-case hex digits)"
        elif isinstance(image, str) and image != image.lower():
            hint = " (repository paths are lower case)"
        raise ValueError(f"image {image!r} is not an image reference: [registry/]repository[:tag][@sha256:<64 hex>]"
                         f"{hint}")
    parts = match.groupdict()
    first = image.split("/", 1)[0]
    if parts["domain"] is None and "/" in image and ("." in first or ":" in first or first == "localhost"):
        raise ValueError(f"image {image!r}: registry {first!r} is not a valid host[:port]")
    if len(parts["name"]) > MAX_NAME:
        raise ValueError(f"image {image!r}: name is longer than {MAX_NAME} characters")
    return parts


def image_is_pinned(image: str) -> bool:
    """A digest, or a tag that is not a moving one (`latest`, `main`, ...); untagged is not pinned."""
    try:
        parts = parse_reference(image)
    except ValueError:
        return False
    return bool(parts["digest"]) or (parts["tag"] is not None and parts["tag"] not in MUTABLE_TAGS)


def check_pinned(image: str) -> str:
    """The image if it is a valid, pinned reference; else ValueError saying what would be accepted."""
    parts = parse_reference(image)
    if not parts["digest"] and (parts["tag"] is None or parts["tag"] in MUTABLE_TAGS):
        raise ValueError(f"image {image!r} has no tag or a mutable one; pin a version tag or a sha256 digest")
    return image
