"""Stack values as `pulumi config set` writes them: decimal strings for numbers, "true"/"false" for booleans,
read back by type; everything else stays as written for the strict models to refuse."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import pytest
from pydantic import Field

from rayserve_pulumi.config.pulumi_values import as_written_by_pulumi

PositiveInt = Annotated[int, Field(ge=1)]


@pytest.mark.parametrize("annotation,value,expected", [
    (int, "4", 4), (int, "-2", -2), (float, "1.5", 1.5), (float, "90", 90.0), (float, ".5", 0.5),
    (float, "2e3", 2000.0), (bool, "true", True), (bool, "false", False),
    (Optional[float], "1.5", 1.5), (PositiveInt, "3", 3),
    (Optional[Union[PositiveInt, Literal["auto"]]], "3", 3),
    (Optional[Union[PositiveInt, Literal["auto"]]], "auto", "auto"),
    (list[int], ["1", 2], [1, 2]), (dict[str, float], {"a": "0.5"}, {"a": 0.5}),
    (float, 1.5, 1.5), (int, True, True),  # not strings: left to the model (which refuses True for an int)
])
def test_what_pulumi_writes_is_read_back_by_type(annotation, value, expected):
    out = as_written_by_pulumi(annotation, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("annotation,value", [
    (int, "4.5"), (int, "four"), (int, "true"), (int, "0x10"), (int, " 4"), (float, "inf"), (float, "nan"),
    (float, "1e999"), (float, "1,5"), (float, "true"), (bool, "yes"), (bool, "1"), (bool, "True"),
    (str, "4"), (Union[int, str], "4"), (Literal["1.29", "1.30"], "1.30"),
])
def test_anything_else_stays_as_written(annotation, value):
    assert as_written_by_pulumi(annotation, value) is value
