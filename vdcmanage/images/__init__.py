"""Disk image files: what they really are (format and virtual size, from their content) and their checksums.

``inspect_image(path)`` and ``file_digests(path)`` are the entry points; both only use the standard
library, so importing this package stays cheap.
"""

from vdcmanage.images.checksum import Digests, check_md5, file_digests, parse_md5
from vdcmanage.images.inspect import FORMATS, ImageInfo, inspect_image

__all__ = ["FORMATS", "Digests", "ImageInfo", "check_md5", "file_digests", "inspect_image", "parse_md5"]
