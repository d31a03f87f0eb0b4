"""xe's failures translated for the operator: the step, xe's words, what they mean, what to do."""

from __future__ import annotations

import pytest

from vdcmanage.importer.xeadvice import Situation, explain
from vdcmanage.remote.ssh import CommandResult
from vdcmanage.remote.xe import classify

HERE = Situation("vdi-import", "hn-xen1", "3f2a-sr", "job-abc12345")


def explained(stderr: str, command: str = "vdi-import") -> str:
    exc = classify(CommandResult(("xe", command), 1, b"", stderr.encode()), "root@xen1")
    return explain(exc, HERE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stderr", "words", "meaning", "remedy"),
    [
        ("Error code: VDI_IO_ERROR\nError parameters: Device I/O errors\n", "said VDI_IO_ERROR (Device I/O errors)",
         "the SR ran out of space", "free space on SR 3f2a-sr"),
        ("Error code: SR_BACKEND_FAILURE_79\nError parameters: , VDI Invalid size [opterr=VDI size must be "
         "between 1 MB and 2088960 MB], \n", "said SR_BACKEND_FAILURE_79 (VDI Invalid size [opterr=VDI size must "
         "be between 1 MB and 2088960 MB])", "at most 2040 GiB", "import a smaller image"),
        ("Error code: SR_BACKEND_FAILURE_44\nError parameters: , There is insufficient space, \n",
         "said SR_BACKEND_FAILURE_44 (There is insufficient space)", "no room for the VDI", "free space on SR"),
        ("Error code: SR_BACKEND_FAILURE_47\nError parameters: , The SR is not available [opterr=gone], \n",
         "said SR_BACKEND_FAILURE_47 (The SR is not available [opterr=gone])", "storage manager of SR 3f2a-sr failed",
         "/var/log/SMlog"),
        ("The uuid you supplied was invalid.\ntype: VDI\nuuid: 1234\n", "said The uuid you supplied was invalid. / "
         "type: VDI / uuid: 1234", "the VDI 1234 no longer exists", "job cancel job-abc12345"),
        ("The server failed to handle your request, due to an internal error.  The given message may give "
         "details useful for debugging the problem.\nmessage: Unknown format qcow9\n", "internal error",
         "xapi failed internally", "xensource.log"),
        ("Error code: HOST_OFFLINE\nError parameters: OpaqueRef:1\n", "said HOST_OFFLINE (OpaqueRef:1)",
         "xapi refused", "then 'vdc-manage job retry job-abc12345'"),
    ],
)
def test_each_failure_says_what_xe_said_what_it_means_and_what_to_do(
    stderr: str, words: str, meaning: str, remedy: str
) -> None:
    message = explained(stderr)
    assert message.startswith("xe vdi-import on hn-xen1 ")
    said_and_meant, remedy_given = message.split(". What to do: ")
    assert words in said_and_meant and meaning in said_and_meant
    assert remedy in remedy_given
