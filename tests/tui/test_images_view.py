"""The images view driven with the pilot: browse, filter, sort, detail, and every action with its errors."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import drive, images_ready, make_app, screen_text, settled, wait_until


def image_record(image_id: str) -> dict[str, Any]:
    from vdcmanage.catalog.images import get_image, image_dict

    return image_dict(get_image(image_id))


def shown_ids(screen: Any) -> list[str]:
    return [row["id"] for _, row in screen.table.loaded_rows()]


def test_lists_live_images_with_the_columns_that_fit_80_columns(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        text = screen_text(pilot.app)
        assert screen.total == 7  # the deleted image is not listed
        assert "wmi-old0001" not in text
        # sorted by Created: that column stays, format and virtual size give way (the detail pane has them)
        assert text.splitlines()[2].split() == ["ID", "Name", "Account", "Arch", "Size", "State", "Created", "(UTC)▲"]
        assert "wmi-lucid0   Ubuntu 10.04 64… a-shpoolxx x86_64  612M available 2024-05-01 02:00" in text
        assert "7 images" in text

    drive(make_app(tui_catalog), scenario)


def test_wide_terminal_shows_the_created_column_and_detail_beside_the_table(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("enter")
        await pilot.pause(0.1)
        text = screen_text(pilot.app)
        assert "Created (UTC)" in text
        assert "2024-05-01 02:00" in text  # wmi-lucid0, 600 minutes before noon
        detail = screen.query_one("#image-detail")
        assert detail.region.x > 0 and detail.region.y == screen.table.region.y  # to the right, not below

    drive(make_app(tui_catalog), scenario, size=(160, 40))


def test_filter_matches_id_name_description_and_account_words(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("slash", *"ubuntu")
        await settled(pilot, screen)
        assert shown_ids(screen) == ["wmi-lucid0", "wmi-lucid32"]
        assert "2 images" in screen_text(pilot.app)
        for text, expected in [
            ("cloud-init", ["wmi-lucid0"]),  # description
            ("tenant two", ["wmi-broken1", "wmi-gentoo1"]),  # the account's name
            ("a-tenant01", ["wmi-debian7", "wmi-win2008"]),  # the account id
            ("WMI-CENTOS", ["wmi-centos62"]),  # id, any case
            ("ubuntu 32bit", ["wmi-lucid32"]),  # every word must match
            ("100%_x", []),  # LIKE wildcards are literal
        ]:
            screen.query_one("#filter").value = text
            await settled(pilot, screen)
            assert shown_ids(screen) == expected, text
        assert "No images match" in screen_text(pilot.app)
        await pilot.press("escape")  # clears the filter and returns to the table
        await settled(pilot, screen)
        assert screen.total == 7
        assert pilot.app.focused is screen.table

    drive(make_app(tui_catalog), scenario)


def test_sort_cycles_columns_and_reverses(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        assert shown_ids(screen)[0] == "wmi-lucid0"  # oldest first
        await pilot.press("s")  # name
        await settled(pilot, screen)
        assert shown_ids(screen)[:2] == ["wmi-centos62", "wmi-debian7"]
        assert "Name▲" in screen_text(pilot.app)
        await pilot.press("S")
        await settled(pilot, screen)
        assert shown_ids(screen)[0] == "wmi-win2008"
        assert "Name▼" in screen_text(pilot.app)
        for _ in range(5):  # id, account, arch, format, size (size starts largest first)
            await pilot.press("s")
        await settled(pilot, screen)
        assert screen.search.sort == "size"
        assert shown_ids(screen)[0] == "wmi-win2008"
        assert "size▼" in screen_text(pilot.app)

    drive(make_app(tui_catalog), scenario)


def test_cursor_moves_and_detail_shows_every_field(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("down", "enter")
        await pilot.pause(0.1)
        detail = str(screen.query_one("#image-detail-text").render())
        record = image_record("wmi-centos62")
        for value in (
            record["id"],
            record["md5"],
            record["sha256"],
            record["source_uri"],
            record["description"],
            "Size: 150.0 MiB (157,286,400 bytes)",
            "virtio no, acpi yes",
            "Account: a-shpoolxx",
        ):
            assert value in detail
        await pilot.press("down")  # the pane follows the cursor
        await pilot.pause(0.1)
        assert "wmi-debian7" in str(screen.query_one("#image-detail-text").render())
        await pilot.press("enter")
        await pilot.pause(0.05)
        assert not screen.query_one("#image-detail").display

    drive(make_app(tui_catalog), scenario)


def test_toggle_features_changes_the_catalog_and_says_so(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("v")
        await wait_until(pilot, lambda: screen.status.text == "✓ virtio on for wmi-lucid0 (press v again to undo)")
        assert image_record("wmi-lucid0")["features"] == {"virtio": True, "acpi": True}
        await wait_until(pilot, lambda: screen.table.selected["features"]["virtio"] is True)
        await pilot.press("a", "v")
        await wait_until(pilot, lambda: image_record("wmi-lucid0")["features"] == {"virtio": False, "acpi": False})

    drive(make_app(tui_catalog), scenario)


def test_edit_changes_only_the_fields_changed(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("down", "e")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "EditImageDialog")
        dialog = pilot.app.screen
        dialog.query_one("#display-name").value = "CentOS 6.2 (AMI)"
        dialog.query_one("#description").text = "line one\nline two"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        record = image_record("wmi-centos62")
        assert record["display_name"] == "CentOS 6.2 (AMI)"
        assert record["description"] == "line one\nline two"
        assert record["is_public"] is True
        assert "Saved display name, description of wmi-centos62" in screen.status.text
        await wait_until(pilot, lambda: "CentOS 6.2 (AMI)" in screen_text(pilot.app))

    drive(make_app(tui_catalog), scenario)


def test_refused_edit_shows_the_error_in_the_form_and_changes_nothing(tui_catalog: str) -> None:
    before = image_record("wmi-lucid0")

    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "EditImageDialog")
        dialog = pilot.app.screen
        dialog.query_one("#display-name").value = ""  # the core refuses an empty name
        dialog.query_one("#public").value = False
        await pilot.press("ctrl+s")
        error = dialog.query_one("#form-error")
        await wait_until(pilot, lambda: "ERROR: Display name must not be empty" in str(error.render()))
        assert pilot.app.screen is dialog  # the form stays open with what was typed
        assert image_record("wmi-lucid0") == before
        await pilot.press("escape")
        assert pilot.app.screen.__class__.__name__ == "ImagesScreen"
        assert image_record("wmi-lucid0") == before

    drive(make_app(tui_catalog), scenario)


def test_edit_with_no_change_says_so(tui_catalog: str) -> None:
    before = image_record("wmi-lucid0")

    async def scenario(pilot: Any) -> None:
        await images_ready(pilot)
        await pilot.press("e", "ctrl+s")
        await pilot.pause(0.1)
        assert "Nothing changed" in str(pilot.app.screen.query_one("#form-error").render())
        assert image_record("wmi-lucid0") == before

    drive(make_app(tui_catalog), scenario)


def test_delete_asks_naming_the_image_and_cancel_changes_nothing(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmDialog")
        text = screen_text(pilot.app)
        assert "Delete image wmi-lucid0 “Ubuntu 10.04 64bit”?" in text
        await pilot.press("enter")  # the focus is on Cancel: a stray Enter deletes nothing
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        assert image_record("wmi-lucid0")["deleted_at"] is None
        assert "cancelled" in screen.status.text

    drive(make_app(tui_catalog), scenario)


def test_delete_confirmed_removes_the_image_from_the_list(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("down", "d", "y")
        await wait_until(pilot, lambda: screen.status.text == "✓ Deleted wmi-centos62")
        await wait_until(pilot, lambda: screen.total == 6)
        assert image_record("wmi-centos62")["state"] == "deleted"
        assert "wmi-centos62" not in shown_ids(screen)
        assert screen.table.cursor_row == 1  # the cursor stays on the same line

    drive(make_app(tui_catalog), scenario)


def test_refused_delete_shows_the_error_and_changes_nothing(tui_catalog: str) -> None:
    """Another admin deleted the image while the confirmation was open: the core refuses, nothing changes."""
    from vdcmanage.catalog.images import delete_image

    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmDialog")
        delete_image("wmi-lucid0")
        before = image_record("wmi-lucid0")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.status.has_class("-error"))
        assert screen.status.text == "ERROR: delete wmi-lucid0: Image wmi-lucid0 is deleted"
        assert image_record("wmi-lucid0") == before

    drive(make_app(tui_catalog, poll_interval=60), scenario)


def test_actions_on_an_empty_list_say_there_is_no_image(tui_catalog: str) -> None:
    async def scenario(pilot: Any) -> None:
        screen = await images_ready(pilot)
        screen.query_one("#filter").value = "no-such-image"
        await settled(pilot, screen)
        screen.table.focus()
        for key in ("e", "v", "d"):
            await pilot.press(key)
            assert screen.status.text == "ERROR: No image selected"
        assert pilot.app.screen is screen

    drive(make_app(tui_catalog), scenario)
