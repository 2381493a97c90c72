"""The building blocks of every settings model, shared by the stack config and the platforms' own settings:
the strict base model and the strings that follow the rules of the system that receives them."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from rayserve_pulumi.config import aws, kubernetes
from rayserve_pulumi.config.images import check_pinned
from rayserve_pulumi.config.pulumi_values import convert_fields

__all__ = ["Strict", "Dns1123Label", "Dns1123Subdomain", "Quantity", "IPv4Cidr", "AllowListCidr", "PinnedImage"]


class Strict(BaseModel):
    """Unknown keys refused; types checked, not coerced (true is not 1, "three" is not 3); numbers finite.
    The one reading beyond that is Pulumi's own: a decimal string for a number and "true"/"false" for a
    boolean, as `pulumi config set` writes them (`pulumi_values`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _as_pulumi_writes(cls, data):
        return convert_fields(cls, data)


# Strings that follow the rules of the system that receives them (checked where they enter).
Dns1123Label = Annotated[str, AfterValidator(kubernetes.dns1123_label)]
Dns1123Subdomain = Annotated[str, AfterValidator(kubernetes.dns1123_subdomain)]
Quantity = Annotated[str, AfterValidator(kubernetes.positive_quantity)]
IPv4Cidr = Annotated[str, AfterValidator(aws.ipv4_cidr)]
AllowListCidr = Annotated[str, AfterValidator(aws.allow_list_cidr)]  # a source range, never 0.0.0.0/0
PinnedImage = Annotated[str, AfterValidator(check_pinned)]  # an OCI reference pinned by digest or version tag
