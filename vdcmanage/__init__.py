"""vdc-manage: machine image catalog and XenServer importer for Wakame-vdc style clouds."""

__version__ = "0.1.0"
