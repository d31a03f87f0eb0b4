"""Import peewee without its optional database drivers, and load a driver when a URL needs it."""

from __future__ import annotations

import sys
import types
from typing import Any

# The modules peewee tries at import time (peewee 4.x, module top).
DRIVER_MODULES = ("psycopg2", "psycopg2cffi", "psycopg", "pymysql", "MySQLdb")


def import_peewee_without_drivers() -> types.ModuleType:
    if "peewee" in sys.modules:
        return sys.modules["peewee"]
    hidden = [name for name in DRIVER_MODULES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import peewee
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
    return peewee


def load_postgresql_driver() -> None:
    """Give peewee psycopg2 as its own import would have (module globals of peewee 4.x)."""
    peewee: Any = sys.modules["peewee"]  # its driver globals are not in peewee's type stubs
    if peewee.psycopg2 is not None:
        return
    import psycopg2
    from psycopg2 import extensions
    from psycopg2.extras import Json, register_uuid

    register_uuid()
    peewee.psycopg2, peewee.pg_extensions, peewee.pg_register_uuid, peewee.Json_pg2 = (
        psycopg2,
        extensions,
        register_uuid,
        Json,
    )


def load_mysql_driver() -> None:
    peewee: Any = sys.modules["peewee"]
    if peewee.mysql is not None:
        return
    import pymysql

    peewee.mysql = pymysql
