"""The catalog's tables. Schema changes go through numbered migrations (migrations.py).

Times are naive UTC datetimes (:func:`utcnow`). Soft-deleted rows keep their id and get
``deleted_at``, so an id is never reused and history stays readable.
"""

from __future__ import annotations

import datetime as dt

import peewee

from vdcmanage.catalog.db import database
from vdcmanage.catalog.ids import ID_MAX_LENGTH

SHARED_ACCOUNT_ID = "a-shpoolxx"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# MariaDB compares text by the database's collation, by default case- and accent-insensitively (and
# blind to trailing spaces); SQLite and PostgreSQL compare exactly. Ids and names are binary there
# too, so that the three agree on which names are equal (catalog/unique.py).
MYSQL_BINARY_COLLATION = "utf8mb4_nopad_bin"


def binary_on_mysql(datatype: peewee.SQL) -> peewee.SQL:
    if isinstance(database.obj, peewee.MySQLDatabase):
        return peewee.SQL(f"{datatype.sql} CHARACTER SET utf8mb4 COLLATE {MYSQL_BINARY_COLLATION}")
    return datatype


class IdField(peewee.CharField):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_length=ID_MAX_LENGTH, **kwargs)

    def ddl_datatype(self, ctx: peewee.Context) -> peewee.SQL:
        return binary_on_mysql(super().ddl_datatype(ctx))


class IdForeignKeyField(peewee.ForeignKeyField):
    """A reference to another record's id, compared as the id is."""

    def ddl_datatype(self, ctx: peewee.Context) -> peewee.SQL:
        return binary_on_mysql(super().ddl_datatype(ctx))


class NameField(peewee.CharField):
    """A name a command can find a record by."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_length=255, **kwargs)

    def ddl_datatype(self, ctx: peewee.Context) -> peewee.SQL:
        return binary_on_mysql(super().ddl_datatype(ctx))


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class TimestampedModel(BaseModel):
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)  # MAX(updated_at): the dashboard's change token
    deleted_at = peewee.DateTimeField(null=True, index=True)

    def touch(self) -> None:
        self.updated_at = utcnow()


class Account(TimestampedModel):
    id = IdField(primary_key=True)
    name = NameField(null=True)
    description = peewee.TextField(null=True)


class Job(BaseModel):
    """A durable unit of long work (an import); its steps and log lines hang off it."""

    id = IdField(primary_key=True)
    kind = peewee.CharField(max_length=64)
    params = peewee.TextField()  # JSON; never holds secrets
    state = peewee.CharField(max_length=16, index=True)  # queued running succeeded failed cancelled
    current_step = peewee.CharField(max_length=64, null=True)
    bytes_done = peewee.BigIntegerField(default=0)
    bytes_total = peewee.BigIntegerField(default=0)
    error = peewee.TextField(null=True)
    result = peewee.TextField(null=True)  # JSON, e.g. {"image_id": "wmi-..."}
    attempts = peewee.IntegerField(default=0)
    worker = peewee.CharField(max_length=255, null=True)
    heartbeat_at = peewee.DateTimeField(null=True)
    cancel_requested = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)  # MAX(updated_at): the dashboard's change token
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)


class JobStep(BaseModel):
    id = peewee.AutoField()
    job = IdForeignKeyField(Job, backref="steps", on_delete="CASCADE")
    position = peewee.IntegerField()
    name = peewee.CharField(max_length=64)
    state = peewee.CharField(max_length=16, default="pending")  # pending running done failed skipped
    bytes_done = peewee.BigIntegerField(default=0)
    bytes_total = peewee.BigIntegerField(default=0)
    detail = peewee.TextField(null=True)  # JSON: what the step needs to resume (e.g. verified ranges)
    error = peewee.TextField(null=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("job", "name"), True),)


class JobLog(BaseModel):
    id = peewee.AutoField()
    job = IdForeignKeyField(Job, backref="log_lines", on_delete="CASCADE")
    at = peewee.DateTimeField(default=utcnow)
    level = peewee.CharField(max_length=8, default="info")
    message = peewee.TextField()


# The orders the dashboard pages live images in (catalog/browse.py); each has an index below.
SORTABLE_IMAGE_COLUMNS = (
    "created_at",
    "display_name",
    "account",
    "arch",
    "file_format",
    "size",
    "virtual_size",
    "state",
)


class Image(TimestampedModel):
    id = IdField(primary_key=True)
    account = IdForeignKeyField(Account, backref="images", on_delete="RESTRICT")
    boot_type = peewee.CharField(max_length=16, default="local")
    source_uri = peewee.TextField()
    arch = peewee.CharField(max_length=16, index=True)
    is_public = peewee.BooleanField(default=False)
    state = peewee.CharField(max_length=16, index=True)
    display_name = NameField(null=True, index=True)
    description = peewee.TextField(null=True)
    file_format = peewee.CharField(max_length=16, index=True)
    size = peewee.BigIntegerField()  # bytes of the file (or published artifact) on disk
    virtual_size = peewee.BigIntegerField()  # bytes the guest sees
    md5 = peewee.CharField(max_length=32)
    sha256 = peewee.CharField(max_length=64)
    os_type = peewee.CharField(max_length=16, default="linux")
    feature_virtio = peewee.BooleanField(default=False)
    feature_acpi = peewee.BooleanField(default=True)
    job = IdForeignKeyField(Job, null=True, backref="images", on_delete="SET NULL")

    # peewee adds these raw-value accessors for the foreign keys; declared for the type checker
    account_id: str
    job_id: str | None

    class Meta:
        # The dashboard pages through live images in any of these orders (catalog/browse.py). An index
        # (deleted_at, column, id) answers "WHERE deleted_at IS NULL ORDER BY column, id LIMIT n OFFSET m"
        # from the index alone: measured on 100,000 images in SQLite, a page at offset 50,000 sorted by
        # size took 630 ms with single-column indexes (the planner sorted the whole table) and
        # a few ms with these.
        indexes = (
            *((("deleted_at", column, "id"), False) for column in SORTABLE_IMAGE_COLUMNS),
            (("deleted_at", "id"), False),
        )


class ImagePreparation(BaseModel):
    """One `image prepare` step done on a registered image."""

    id = peewee.AutoField()
    image = IdForeignKeyField(Image, backref="preparations", on_delete="CASCADE")
    step = peewee.CharField(max_length=64)
    purpose = peewee.CharField(max_length=16)  # xen-pv | cloud
    detail = peewee.TextField(null=True)
    done_at = peewee.DateTimeField(default=utcnow)


class Host(TimestampedModel):
    """A XenServer/XCP-ng host reached over SSH. No secrets: keys stay in files or the agent."""

    id = IdField(primary_key=True)
    name = NameField(index=True)
    address = peewee.CharField(max_length=255)
    port = peewee.IntegerField(null=True)  # None: from ~/.ssh/config, else 22
    user = peewee.CharField(max_length=255, null=True)  # None: from ~/.ssh/config, else root
    key_file = peewee.TextField(null=True)
    sr_uuid = peewee.CharField(max_length=64, null=True)
    host_key = peewee.TextField(null=True)  # "<type> <base64>" recorded by --accept-new-host-key


class BackupStorage(TimestampedModel):
    """Where published templates go: a local directory or one on a web server over SSH."""

    id = IdField(primary_key=True)
    display_name = NameField(null=True, index=True)
    storage_type = peewee.CharField(max_length=16)  # local | ssh
    base_uri = peewee.TextField()
    path = peewee.TextField()
    address = peewee.CharField(max_length=255, null=True)
    port = peewee.IntegerField(null=True)
    user = peewee.CharField(max_length=255, null=True)
    key_file = peewee.TextField(null=True)
    host_key = peewee.TextField(null=True)


ALL_MODELS: list[type[BaseModel]] = [
    Account,
    Job,
    JobStep,
    JobLog,
    Image,
    ImagePreparation,
    Host,
    BackupStorage,
]
