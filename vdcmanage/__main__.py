"""``python -m vdcmanage`` runs the same entry point as the ``vdc-manage`` script."""

from vdcmanage.cli.entry import main

raise SystemExit(main())
