"""Kubernetes' own rules for what a stack names and sizes: object names, namespaces, labels, quantities.

Re-stated from k8s.io/apimachinery (validation.IsDNS1123Label, IsDNS1035Label, IsQualifiedName,
IsValidLabelValue) and k8s.io/apimachinery/pkg/api/resource (the Quantity grammar).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "DNS1123_LABEL", "DNS1035_LABEL", "LABEL_NAME", "DNS1123_SUBDOMAIN", "QUANTITY", "BINARY", "DECIMAL",
    "dns1123_label", "dns1035_label", "dns1123_subdomain", "label_key", "label_value", "parse_quantity",
    "positive_quantity",
]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = re.compile(r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3),
           "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}


def dns1123_label(value: str) -> str:
    """A namespace or most object names: lower case letters, digits and '-', at most 63 characters."""
    if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 label: lower-case letters, digits and '-', starting and "
                         "ending with a letter or digit, at most 63 characters")
    return value


def dns1035_label(value: str, max_len: int = 63) -> str:
    """A Service name (and what KubeRay derives Services from): DNS-1123 label starting with a letter."""
    if not isinstance(value, str) or len(value) > max_len or not DNS1035_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS-1035 label: lower-case letters, digits and '-', starting with a "
                         f"letter, ending with a letter or digit, at most {max_len} characters")
    return value


def dns1123_subdomain(value: str) -> str:
    """A StorageClass (and most other cluster-scoped) name: DNS-1123 labels joined by '.', at most 253 characters."""
    if not isinstance(value, str) or len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting "
                         "and ending with a letter or digit, at most 253 characters")
    return value


def label_key(key: str) -> str:
    """A label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        raise ValueError(f"label key {key!r}: prefix {prefix!r} is not a DNS subdomain")
    if not name or len(name) > 63 or not LABEL_NAME.match(name):
        raise ValueError(f"label key {key!r}: name must be 1-63 characters of letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit")
    return key


def label_value(value: str) -> str:
    """A label value: empty, or at most 63 characters of letters, digits, '-', '_', '.' (alphanumeric ends)."""
    if not isinstance(value, str) or len(value) > 63 or (value and not LABEL_NAME.match(value)):
        raise ValueError(f"label value {value!r} must be at most 63 characters of letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit")
    return value


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "1.5", "4Gi", "1e3") as a number of base units."""
    match = QUANTITY.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi', '512Mi')")
    try:
        number, suffix = Decimal(match["number"]), match["suffix"] or ""
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None
    if suffix in BINARY:
        return number * BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * DECIMAL[suffix]


def positive_quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f"{value!r} must be greater than zero")
    return value
