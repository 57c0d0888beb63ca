"""Alembic's entry point for tgplus: run migrations on the connection tgplus hands over.

`tgplus.feedback.store.FeedbackStore.upgrade` opens one transaction (holding
a lock, so several workers starting together migrate once), passes its
connection in `config.attributes["connection"]`, and Alembic runs inside it.
There is no alembic.ini and no offline (SQL script) mode. A schema change is a
new file in versions/ written by hand after the shape of the last one (the
next number as `revision`, the last as `down_revision`; script.py.mako is
the template), plus a test that upgrades a database of the previous revision.
"""

from __future__ import annotations

from alembic import context

from tgplus.feedback.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tgplus db upgrade`, which supplies the connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
