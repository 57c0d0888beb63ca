"""Recorded predictions under a short id, and feedback pointing at them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(8), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("genres", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    # No foreign key: feedback keeps its own copy of the text and suggestion, so
    # purging old predictions never touches the editors' answers.
    op.add_column("feedback", sa.Column("prediction_id", sa.String(8), nullable=True))
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_prediction_id", "feedback")
    op.drop_column("feedback", "prediction_id")
    op.drop_table("predictions")
