"""The catalog: one peewee database shared by the CLI, the worker and the dashboard.

peewee imports every database driver it finds at import time: psycopg2 (~15 ms) and PyMySQL,
which pulls in cryptography (~27 ms), together ~40% of a `vdc-manage image show <id>` run on
the SQLite default. So peewee is imported here, before any model, with those drivers hidden;
`db.make_database` loads the one driver a server URL needs and hands it to peewee.
"""

from vdcmanage.catalog.drivers import import_peewee_without_drivers

import_peewee_without_drivers()
