"""The bundled apps' user_config models: what each deployment's `reconfigure` annotates.

A module of their own that imports only pydantic: a later user_config-only change is checked against
them in a child interpreter that imports this module alone, in a fraction of a second (config.verdict),
not the apps with Ray Serve.
"""
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

# most orders one call to a stand carries (user_config orders_per_call); with two batches in flight, 32
# fills the market's max_ongoing_requests (64, serve_config.yaml), which Serve asks of a batch size
ORDERS_PER_CALL = 32
MAX_VALUE = 1e9  # calc: the largest magnitude of a value, a factor or an increment
DEFAULT_MODEL = "t5-small"


class StandConfig(BaseModel):
    """A stand's user_config."""

    model_config = ConfigDict(extra="forbid")
    price: Optional[float] = Field(None, ge=0, allow_inf_nan=False,
                                   description="price of one unit, a non-negative number (default: the stand's own)")


class MarketConfig(BaseModel):
    """The market's user_config."""

    model_config = ConfigDict(extra="forbid")
    orders_per_call: int = Field(ORDERS_PER_CALL, ge=1, le=1000,
                                 description="most orders one call to a stand carries (1: a call per order)")


class MultiplierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: Optional[float] = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False,
                                    description="what values are multiplied by (default: unchanged)")


class AdderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    increment: Optional[float] = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False,
                                       description="what is added to values (default: unchanged)")


class SummarizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(DEFAULT_MODEL, min_length=1, description="a model directory's name under the models "
                       "folder, or a Hugging Face model id")


class TranslatorConfig(SummarizerConfig):
    language: Optional[Literal["french", "german", "romanian", "French", "German", "Romanian"]] = Field(
        None, description="the language summaries are translated to (default: unchanged, French at first)")
