from __future__ import annotations

import re

import pytest

from vdcmanage.catalog.ids import PREFIXES, check_id, is_valid_id, new_id
from vdcmanage.errors import InvalidArgument


@pytest.mark.parametrize("kind", list(PREFIXES))
def test_new_ids_have_the_prefix_and_eight_characters(kind: str) -> None:
    ids = {new_id(kind) for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(rf"{PREFIXES[kind]}-[a-z0-9]{{8}}", i) for i in ids)


@pytest.mark.parametrize("value", ["wmi-lucid0", "wmi-a", "wmi-" + "x" * 255])
def test_chosen_image_ids(value: str) -> None:
    assert check_id("image", value) == value


@pytest.mark.parametrize(
    "value", ["", "wmi-", "wmi-UPPER", "a-shpoolxx", "wmi-x_y", "wmi-" + "x" * 256, "wmi-é", "wmi-x y", "wmi-$(id)"]
)
def test_malformed_image_ids_are_refused(value: str) -> None:
    assert not is_valid_id("image", value)
    with pytest.raises(InvalidArgument, match="Invalid image id"):
        check_id("image", value)
