"""Editors in the loop: the feedback store, its migrations, and export for training."""

from tgplus.feedback.store import (
    FeedbackRepository,
    FeedbackStore,
    NewFeedback,
    Purged,
    Quality,
    SavedFeedback,
    ServedPrediction,
    measure_quality,
)

__all__ = [
    "FeedbackRepository",
    "FeedbackStore",
    "NewFeedback",
    "Purged",
    "Quality",
    "SavedFeedback",
    "ServedPrediction",
    "measure_quality",
]
