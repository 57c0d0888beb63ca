"""Request and response bodies of the service, as pydantic models (they become the OpenAPI docs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tgplus.feedback.models import EDITOR_MAX_CHARS, NOTE_MAX_CHARS, PREDICTION_ID_CHARS

MAX_GENRES = 100


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("description is empty; send the movie's plot as text")
    return value


class WordWeightOut(BaseModel):
    text: str = Field(description="The word as sent.", examples=["gangster"])
    start: int = Field(ge=0, description="Offset of its first character in the field as sent.")
    end: int = Field(ge=0, description="Offset just after its last character.")
    weight: float = Field(description="Signed share of the genre's raw score due to this word.")
    field: Literal["description", "title"]


class GenreScoreOut(BaseModel):
    genre: str
    score: float = Field(ge=0.0, le=1.0, description="Calibrated probability of the genre.")
    explanation: list[WordWeightOut] | None = Field(
        None, description="With explain=true: the words that raised or lowered the score."
    )


class PredictionOut(BaseModel):
    """The top genre, every genre at or above its threshold, and the top-k with scores."""

    genre: str = Field(description="The top-scored genre.", examples=["Crime"])
    genres: list[str] = Field(description="Genres at or above their threshold (at least one).")
    top: list[GenreScoreOut] = Field(description="The top-k genres, best first.")
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability that the top genre is right: learned from "
        "out-of-source scores, or the top genre's calibrated score for models without it.",
    )
    confident: bool | None = Field(
        description="Confidence reaches the threshold set for the model's target precision "
        "(null for models saved without calibration)."
    )
    recall_target: float | None = Field(None, description="The recall target asked for.")
    genre_set: list[str] | None = Field(
        None, description="With recall_target: genres expected to hold that share of the true."
    )
    explanation_method: Literal["exact", "exact-parts-only", "none"] | None = Field(
        None,
        description="With explain=true: exact (every part of the model), exact-parts-only "
        "(the fine-tuned MiniLM half of `accurate` not attributed) or none.",
    )
    prediction_id: str | None = Field(
        None, description="With TGPLUS_RECORD_PREDICTIONS: the stored prediction's short id."
    )


# JSON Schema for "not blank": any character Python's str.strip() keeps, spelled
# out so that JSON Schema tools (whatever their regex flavour) agree with the
# server; the validators below give the friendlier message.
NOT_BLANK: dict[str, Any] = {
    "minLength": 1,
    "pattern": r"[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
}


RecallTarget = Annotated[
    float | None,
    Field(gt=0.0, lt=1.0, strict=True, allow_inf_nan=False, description="Also return the "
          "genre set expected to "
          "hold this share of the movie's genres (conformal risk control), e.g. 0.9."),
]  # fmt: skip
"""strict: a JSON number, not "0.9" (as top_k below, text here is a client's bug)."""
Explain = Annotated[
    bool,
    Field(strict=True, description="Add each top genre's words, with offsets and weights."),
]


def _a_json_number(value: object) -> object:
    # pydantic would read JSON true as 1 and "3" as 3; a client sending them has a bug
    # worth naming. (2.0 stays 2: JSON Schema counts it as an integer, as clients do.)
    if isinstance(value, bool | str):
        raise ValueError("top_k must be a whole number, not true, false or text")
    return value


TopK = Annotated[int, Field(ge=1, le=20), BeforeValidator(_a_json_number)]


class RequestBody(BaseModel):
    """A request body: a field it does not have is a 422 (a misspelt `recall_targt` would
    otherwise be ignored without a word)."""

    model_config = ConfigDict(extra="forbid")


class PredictRequest(RequestBody):
    description: str = Field(
        examples=["A detective hunts a serial killer."], json_schema_extra=NOT_BLANK
    )
    title: str = Field("", description="The movie's title, if known; it helps a little.")
    top_k: TopK = 3
    explain: Explain = False
    recall_target: RecallTarget = None

    _check = field_validator("description")(_not_blank)


class BatchItem(RequestBody):
    description: str = Field(json_schema_extra=NOT_BLANK)
    title: str = ""

    _check = field_validator("description")(_not_blank)


class BatchRequest(RequestBody):
    descriptions: list[BatchItem | Annotated[str, Field(json_schema_extra=NOT_BLANK)]] = Field(
        min_length=1, description="Descriptions, or objects with description and title."
    )
    top_k: TopK = 3
    explain: Explain = False
    recall_target: RecallTarget = None

    @field_validator("descriptions")
    @classmethod
    def _check_items(cls, items: list[BatchItem | str]) -> list[BatchItem | str]:
        for position, item in enumerate(items):
            if isinstance(item, str) and not item.strip():
                raise ValueError(f"description {position} is empty; send the movie's plot as text")
        return items


class BatchResponse(BaseModel):
    predictions: list[PredictionOut]


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query or path, then the field.")
    msg: str = Field(description="What is wrong with it (never the value itself).")
    type: str = Field(description="A machine-readable kind, as pydantic names it.")


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: one sentence, and the fields at fault when there are any."""

    detail: str = Field(examples=["description is empty; send the movie's plot as text"])
    errors: list[FieldError] = Field(default_factory=list)


class ModelOut(BaseModel):
    id: str = Field(description="The model's id: the metadata_sha256 its metadata.json carries.")
    loaded_at: str = Field(description="When this process loaded the model (UTC).")
    kind: str
    path: str = Field(description="The model directory served.")
    bundled: bool = Field(
        description="True when no model was named and there is no data/model: the model "
        "that ships with tgplus is served."
    )
    genres: list[str]
    thresholds: list[float]
    trained_at: str | None = None
    training_seconds: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Training files: file name (never the server's path), sha256, rows used.",
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


class Health(BaseModel):
    status: str
    model: str | None = None
    detail: str | None = None


class NotReady(ErrorOut):
    """/health/ready while the model is not loaded: the error shape, plus the status."""

    status: str = "not ready"


# -- editors: feedback, deletion, reload ----------------------------------------------------


class FeedbackIn(RequestBody):
    """An editor's answer: the genres that are right for a description."""

    description: str | None = Field(
        None,
        description="The movie's plot (may be left out with prediction_id: the recorded text).",
        examples=["A detective hunts a serial killer."],
    )
    title: str | None = Field(None, description="The movie's title, if known.")
    suggested: list[str] | None = Field(
        None,
        max_length=MAX_GENRES,
        description="The genres the model suggested, best first (or give prediction_id).",
    )
    prediction_id: str | None = Field(
        None,
        max_length=PREDICTION_ID_CHARS,
        description="The id of a recorded prediction; its text and genres are used.",
    )
    genres: list[str] = Field(
        min_length=1,
        max_length=MAX_GENRES,
        description="The genres the editor says are right.",
        examples=[["Crime"]],
    )
    editor: str = Field("", max_length=EDITOR_MAX_CHARS, description="Who answered.")
    note: str = Field("", max_length=NOTE_MAX_CHARS, description="Anything else to say.")

    @field_validator("genres", "suggested")
    @classmethod
    def _distinct(cls, genres: list[str] | None) -> list[str] | None:
        return None if genres is None else list(dict.fromkeys(g.strip() for g in genres))


class FeedbackOut(BaseModel):
    id: int = Field(description="The stored feedback's id (DELETE /feedback/{id} removes it).")
    created: bool = Field(
        description="False when the same answer was sent less than a minute ago: stored once."
    )


class Deleted(BaseModel):
    deleted: str


class ReloadOut(BaseModel):
    id: str = Field(description="The served model's id: the metadata_sha256 of its metadata.json.")
    kind: str
    loaded_at: str
    previous: str | None = Field(description="The id of the model served before.")
    other_workers_reloading: bool = Field(
        default=False,
        description="True in a server of several worker processes (`tgplus serve --workers N`): "
        "the other workers load and check the model too, within a second; one that finds it "
        "broken keeps its previous model and logs why.",
    )
