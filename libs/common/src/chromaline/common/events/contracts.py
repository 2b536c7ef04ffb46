"""The event contracts: one versioned pydantic model per event type.

Partners publish and consume against the documents generated from these models into
``docs/events/`` (see :mod:`chromaline.common.events.schema_export`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from chromaline.common.cgats import MAX_PATCHES, Illuminant, ReferenceTable
from chromaline.common.events.envelope import RawEnvelope
from chromaline.common.measurements import ResultWarning

ChartType = Literal["auto", "classic24", "digital_sg", "aruco_classic24", "custom"]
CorrectionMethod = Literal["auto", "white_balance", "linear3x3", "affine3x4", "root_polynomial", "polynomial"]
OutputFormat = Literal["jpeg", "png", "tiff"]
OutputSpace = Literal["srgb", "display-p3", "adobe-rgb", "prophoto"]
RatingGuideline = Literal["fadgi2016", "metamorfoze2"]
"""The imaging guidelines the engine rates against (``chromaline.engine.rating.GUIDELINES``)."""
DEFAULT_RATING_GUIDELINE: RatingGuideline = "fadgi2016"
"""An organisation's guideline until an admin chooses one (the engine's default too)."""
MIN_CUSTOM_PATCHES = 6
"""Fewest patches a custom chart may have: the 3×4 affine fit needs more than its 4 terms per channel
and every cross-validation fold one patch fewer."""
MIN_DISTINCT_REFERENCE_COLOURS = 4
"""A chart is found by how its patches' colours differ, and the 3×4 affine fit needs four colours
that are not all alike: a card of fewer is neither."""
RETENTION_DAYS_MAX = 3650
"""The longest retention period an organisation may choose (ten years)."""


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlobRef(Contract):
    """Where an object lives in the blob store."""

    bucket: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=1024)


FinitePixel = Annotated[float, Field(allow_inf_nan=False, strict=True)]
"""A pixel coordinate: a finite number, never a boolean or a string read as one."""


class ProcessingChoices(Contract):
    """What a client may choose for a job; a saved profile it names by id, resolved by the gateway."""

    chart_type: ChartType = "auto"
    method: CorrectionMethod = "auto"
    reference_edition: Literal["2005", "2014"] = "2014"
    output_format: OutputFormat = "jpeg"
    bit_depth: Literal[8, 16] = 8
    output_space: OutputSpace = Field(
        default="srgb", description="Colour space of the corrected image; its ICC profile is embedded."
    )
    guideline: RatingGuideline | None = Field(
        default=None,
        description="Rating guideline the report leads with; left out, the organisation's setting.",
    )
    corners: list[tuple[FinitePixel, FinitePixel]] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="Chart corners (x, y) in image pixels, clockwise from the dark-skin patch, used when "
        "detection fails.",
    )


CUSTOM_CHART_MAX_SIDE = 100
"""Most rows or columns a custom chart may have (and at most ``cgats.MAX_PATCHES`` patches)."""


class CustomChart(Contract):
    """A chart an organisation defined: layout and reference values, carried whole so that the
    workers need nothing but the event. Patches are row-major from patch 0 (top-left of the chart
    upright), in the order of the reference file."""

    chart_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=100)
    rows: int = Field(ge=1, le=CUSTOM_CHART_MAX_SIDE)
    columns: int = Field(ge=1, le=CUSTOM_CHART_MAX_SIDE)
    gap: float = Field(
        ge=0,
        le=2,
        allow_inf_nan=False,
        description="Chart body between patches, as a share of the patch side.",
    )
    margin: float = Field(
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Chart body around the grid, as a share of the patch side.",
    )
    colour_space: Literal["LAB", "XYZ"] = Field(description="LAB: CIE Lab; XYZ: the white's Y at 100.")
    illuminant: Illuminant | None = Field(
        default=None, description="The values' illuminant (CIE 1931 2°); D50 when not given."
    )
    sample_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=MAX_PATCHES)
    values: list[tuple[FinitePixel, FinitePixel, FinitePixel]] = Field(max_length=MAX_PATCHES)

    @classmethod
    def from_reference(
        cls,
        table: ReferenceTable,
        *,
        name: str,
        rows: int,
        columns: int,
        gap: float,
        margin: float,
        chart_id: uuid.UUID | None = None,
    ) -> CustomChart:
        """The chart whose values a parsed CGATS file holds (raises ``ValidationError`` on a mismatch)."""
        return cls(
            chart_id=chart_id,
            name=name,
            rows=rows,
            columns=columns,
            gap=gap,
            margin=margin,
            colour_space=table.colour_space,
            illuminant=table.illuminant,
            sample_ids=list(table.sample_ids),
            values=list(table.values),
        )

    @model_validator(mode="after")
    def _one_value_per_patch(self) -> CustomChart:
        patches = self.rows * self.columns
        if patches < MIN_CUSTOM_PATCHES:
            raise ValueError(f"a chart needs at least {MIN_CUSTOM_PATCHES} patches")
        if len(self.values) != patches or len(self.sample_ids) != patches:
            raise ValueError(
                f"{self.rows}×{self.columns} patches but {len(self.values)} reference values "
                f"and {len(self.sample_ids)} sample ids"
            )
        if len(set(self.values)) < MIN_DISTINCT_REFERENCE_COLOURS:
            raise ValueError(
                f"the reference values hold fewer than {MIN_DISTINCT_REFERENCE_COLOURS} different colours"
            )
        return self


class ChartChange(Contract):
    """Which custom chart changed, in which organisation, and who changed it."""

    chart_id: uuid.UUID
    organisation_id: str = Field(max_length=64, description="The organisation the chart belongs to.")
    name: str = Field(min_length=1, max_length=100)
    rows: int = Field(ge=1, le=CUSTOM_CHART_MAX_SIDE)
    columns: int = Field(ge=1, le=CUSTOM_CHART_MAX_SIDE)
    patch_count: int = Field(ge=MIN_CUSTOM_PATCHES, le=MAX_PATCHES)
    actor_id: uuid.UUID = Field(description="The user who made the change (an API key's owner).")
    api_key_id: uuid.UUID | None = Field(default=None, description="The API key used, if one was.")


class ChartCreated(ChartChange):
    """A member (or an admin key) defined a custom chart for the organisation; the gateway
    stored it in the transaction that wrote this event. For the audit log (internal)."""

    created_at: datetime


class ChartDeleted(ChartChange):
    """A member (or an admin key) deleted a custom chart; the gateway deleted it in the
    transaction that wrote this event. Jobs uploaded with the chart carry their own copy of its
    definition and finish unaffected. For the audit log (internal)."""

    deleted_at: datetime


class JobOptions(ProcessingChoices):
    profile: BlobRef | None = Field(
        default=None, description="A saved profile to apply instead of detecting."
    )
    custom_chart: CustomChart | None = Field(
        default=None, description="With chart_type custom: the chart's definition."
    )

    @model_validator(mode="after")
    def _custom_chart_with_its_type(self) -> JobOptions:
        if (self.custom_chart is not None) != (self.chart_type == "custom"):
            raise ValueError("chart_type custom goes with a custom_chart, and only it")
        return self


class ImageUploaded(Contract):
    """A photo is in the blob store (or at a URL) and waits to be processed."""

    job_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    organisation_id: str | None = None
    filename: str = Field(max_length=255)
    original: BlobRef | None = None
    source_url: AnyHttpUrl | None = Field(
        default=None, description="Fetched by the detector, with size and time limits, when no blob is given."
    )
    content_type: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)
    options: JobOptions = JobOptions()

    @model_validator(mode="after")
    def _one_source(self) -> ImageUploaded:
        if (self.original is None) == (self.source_url is None):
            raise ValueError("exactly one of original and source_url must be given")
        return self


class PatchSample(Contract):
    index: int = Field(ge=0)
    name: str
    rgb: tuple[float, float, float] = Field(description="Robust mean of the patch, linear light, 0..1.")
    spread: tuple[float, float, float] = Field(description="Robust spread (MAD-based sigma), linear light.")
    flags: list[Literal["clipped", "non_uniform", "outside_frame", "dark"]] = []
    quad: list[tuple[float, float]] = Field(min_length=4, max_length=4, description="Sampled region corners.")


class ChartBox(Contract):
    """Where a chart lies in the photo, and how sure the detector is that it is that chart."""

    chart_type: ChartType
    corners: list[tuple[FinitePixel, FinitePixel]] = Field(
        min_length=4,
        max_length=4,
        description="Patch grid corners, clockwise from the corner next to patch 1.",
    )
    confidence: float = Field(ge=0, le=1)


MAX_OTHER_CHARTS = 8
"""Most other charts one ``chart.detected`` lists (the detector looks for four of each type)."""


class ChartDetected(Contract):
    """Version 2 adds ``other_charts``; version 1 data is read as a photo with one chart."""

    job_id: uuid.UUID
    original: BlobRef
    chart_type: ChartType
    reference_edition: Literal["2005", "2014"]
    corners: list[tuple[float, float]] = Field(min_length=4, max_length=4)
    confidence: float = Field(ge=0, le=1)
    image_size: tuple[int, int] = Field(description="Width and height in pixels.")
    patches: list[PatchSample]
    charts_found: int = Field(ge=1)
    other_charts: list[ChartBox] = Field(
        default=[],
        max_length=MAX_OTHER_CHARTS,
        description="The other charts found in the photo, most confident first: reported, not "
        "used (the photo is corrected with the chart at corners).",
    )
    options: JobOptions


class ChartCandidate(ChartBox):
    """A box that resembles the chart but was not confident enough to correct with."""


class ChartNotFound(Contract):
    job_id: uuid.UUID
    original: BlobRef
    reason: Literal[
        "no_chart",
        "chart_too_small",
        "overexposed",
        "underexposed",
        "unsupported_chart",
        "low_confidence",
        "unknown_chart",
    ]
    message: str
    candidate: ChartCandidate | None = Field(
        default=None,
        description="With low_confidence: the best box seen, for the user to confirm (as manual corners) or reject.",
    )


class DeltaESummary(Contract):
    mean: float
    median: float
    p95: float
    max: float


class PhotoPreviewRefs(Contract):
    """Small 8-bit sRGB JPEGs of the photo before and after correction (at most 800 px long)."""

    original: BlobRef
    corrected: BlobRef


class ImageCorrected(Contract):
    """The corrected image and its profile are stored. Version 2 adds ``previews``, made while
    the corrector had the pixels, so that the reporter does not decode the photos again."""

    job_id: uuid.UUID
    original: BlobRef
    corrected: BlobRef
    profile: BlobRef
    profile_cube: BlobRef | None = Field(default=None, description="The profile as a .cube 3D LUT.")
    method: CorrectionMethod
    chart_type: ChartType | None
    delta_e2000_before: DeltaESummary | None
    delta_e2000_after: DeltaESummary | None
    cross_validated_delta_e2000: float | None = None
    rating: str | None = None
    measurements: BlobRef | None = Field(default=None, description="Per-patch measurements (JSON).")
    warnings: list[ResultWarning] = Field(
        default=[], description="Reasons to doubt the result; the job still ends done."
    )
    previews: PhotoPreviewRefs | None = Field(
        default=None, description="Small sRGB JPEGs of the photo before and after, for reports."
    )


ReportFigure = Literal["chromaticity", "tone_response", "patch_pairs", "delta_e"]
"""The report's pictures of the measured chart, each an SVG."""


class ReportReady(Contract):
    """The report is stored. Version 3: the HTML report and its figures are left out too (made on
    first request, see ``report.html_requested``) and ``figures_on_request`` names the figures
    that will be drawn; version 2 left out the PDF (``report.pdf_requested``); version 1 named
    every file."""

    job_id: uuid.UUID
    report_json: BlobRef
    report_html: BlobRef | None = Field(
        default=None,
        description="The HTML report, when it was made with the report; left out, it is made with "
        "its figures on request (report.html_requested, answered by report.html_ready).",
    )
    report_pdf: BlobRef | None = Field(
        default=None,
        description="The PDF, when it was made with the report; left out, it is made on request "
        "(report.pdf_requested, answered by report.pdf_ready).",
    )
    rating: str | None = None
    figures: dict[ReportFigure, BlobRef] = Field(
        default_factory=dict,
        description="The report's pictures of the measured chart as SVG, by name, when they were "
        "drawn with the report.",
    )
    figures_on_request: list[ReportFigure] = Field(
        default=[],
        max_length=4,
        description="The figures to be drawn with the HTML report on request; empty when no chart "
        "was measured (and the tone response left out without two neutral patches).",
    )
    thumbnail: BlobRef | None = Field(
        default=None, description="A small JPEG of the corrected photo, for lists."
    )


class ReportPdfRequested(Contract):
    """Someone wants a job's PDF report, which is made on first request rather than with every
    report (internal: the gateway asks the reporter)."""

    job_id: uuid.UUID


class ReportPdfReady(Contract):
    """A job's PDF report is stored (internal: the reporter answers ``report.pdf_requested``)."""

    job_id: uuid.UUID
    report_pdf: BlobRef


class ReportHtmlRequested(Contract):
    """Someone wants a job's HTML report or one of its figures, which are drawn on first request
    rather than with every report (internal: the gateway asks the reporter)."""

    job_id: uuid.UUID


class ReportHtmlReady(Contract):
    """A job's HTML report and its figures are stored (internal: the reporter answers
    ``report.html_requested``)."""

    job_id: uuid.UUID
    report_html: BlobRef
    figures: dict[ReportFigure, BlobRef] = Field(
        default_factory=dict, description="The figures as SVG, by name; empty without a measured chart."
    )


PROCESSING_ERROR = "processing_error"
"""The reason of a job a worker failed on in a way the engine does not name (logged where it
happened): the same photo would fail the same way again, so the job ends rather than retrying."""


class ProcessingFailed(Contract):
    job_id: uuid.UUID
    stage: Literal["upload", "detect", "correct", "report", "watchdog"]
    reason: str = Field(description="Machine-readable reason code, e.g. no_chart, decode_error, timeout.")
    message: str


class PasswordResetRequested(Contract):
    """A user asked to reset a password; a notifier delivers the link (in development, a log line).

    The link carries the reset token in clear, so the event is internal: no partner may bind to
    ``user.*`` (see docs/partners.md). The token is single-use and short-lived, and the auth
    service keeps only its hash.
    """

    user_id: uuid.UUID
    email: str = Field(max_length=320)
    reset_url: str = Field(max_length=2048, description="Single-use link holding the reset token.")
    expires_at: datetime


class PartnerRejected(Contract):
    """A consumer refused a message whose publisher (AMQP user_id) is no known service or partner."""

    routing_key: str
    event_id: uuid.UUID
    publisher: str | None = Field(description="The broker-checked AMQP user_id, if the message had one.")
    consumer: str
    reason: str


class OrganisationRetentionChanged(Contract):
    """An organisation's admin changed how long its jobs' files are kept after the jobs end."""

    organisation_id: uuid.UUID
    days: int | None = Field(
        ge=1, le=RETENTION_DAYS_MAX, description="The new period in days; null: the deployment's default."
    )
    previous_days: int | None = Field(ge=1, le=RETENTION_DAYS_MAX)
    changed_by: uuid.UUID
    changed_at: datetime = Field(description="When the change was made; consumers keep the latest.")


ForgetReason = Literal["retention", "deleted_on_request"]


class JobExpired(Contract):
    """A job's files and derived data are to be deleted in every service; the gateway keeps its record.

    Sent when the job outlived its organisation's retention period (``reason: retention``, state
    ``expired``) or when a member deleted it (``reason: deleted_on_request``, state ``deleted``,
    possibly while it was still being processed). The gateway has deleted the original; every
    service that stored something for the job deletes it on hearing this event, and a worker
    remembers the job as forgotten so that work still in flight for it stores nothing afterwards.
    """

    job_id: uuid.UUID
    organisation_id: str | None = None
    filename: str = Field(max_length=255)
    reason: ForgetReason = "retention"
    retention_days: int | None = Field(
        default=None, ge=1, le=RETENTION_DAYS_MAX, description="With reason retention: the period."
    )
    cutoff: datetime | None = Field(
        default=None, description="With reason retention: jobs that ended before this instant expired."
    )
    deleted_by: uuid.UUID | None = Field(
        default=None, description="With reason deleted_on_request: the user who deleted the job."
    )
    api_key_id: uuid.UUID | None = Field(
        default=None, description="With reason deleted_on_request: the API key used, if one was."
    )
    expired_at: datetime = Field(description="When the gateway deleted the job's original.")
    original: BlobRef | None = Field(description="The uploaded photo, deleted by the gateway.")
    results: dict[str, BlobRef] = Field(
        default_factory=dict,
        description="The job's results by name (corrected, profile, report_pdf, ...), each deleted by "
        "the service that wrote it.",
    )
    kept: list[BlobRef] = Field(
        default_factory=list, description="Results a saved profile still uses; they outlive the job."
    )

    @model_validator(mode="after")
    def _says_why(self) -> JobExpired:
        if self.reason == "retention" and (self.retention_days is None or self.cutoff is None):
            raise ValueError("an expiry after retention names its retention_days and cutoff")
        if self.reason == "deleted_on_request" and self.deleted_by is None:
            raise ValueError("a deletion on request names who deleted the job (deleted_by)")
        return self


@dataclass(frozen=True)
class EventSpec:
    routing_key: str
    version: int
    model: type[Contract]
    summary: str
    also_reads: tuple[int, ...] = ()
    """Earlier versions whose data the current model still validates: consumers accept them, so
    that messages of producers not yet upgraded are not refused during a rollout."""


EVENTS: tuple[EventSpec, ...] = (
    EventSpec("image.uploaded", 1, ImageUploaded, "A photo waits to be processed."),
    EventSpec(
        "chart.detected",
        2,
        ChartDetected,
        "A chart was found and its patches measured; any other charts in the photo are listed.",
        also_reads=(1,),
    ),
    EventSpec("chart.not_found", 1, ChartNotFound, "No usable chart in the photo."),
    EventSpec("chart.created", 1, ChartCreated, "An organisation defined a custom chart (internal)."),
    EventSpec("chart.deleted", 1, ChartDeleted, "An organisation deleted a custom chart (internal)."),
    EventSpec(
        "image.corrected",
        2,
        ImageCorrected,
        "The corrected image and its profile are stored, with small previews of the photo.",
        also_reads=(1,),
    ),
    EventSpec(
        "report.ready",
        3,
        ReportReady,
        "The colour report is stored; its HTML, figures and PDF are made on first request.",
        also_reads=(1, 2),
    ),
    EventSpec(
        "report.pdf_requested",
        1,
        ReportPdfRequested,
        "A job's PDF report is wanted and not yet made (internal).",
    ),
    EventSpec("report.pdf_ready", 1, ReportPdfReady, "A job's PDF report is stored (internal)."),
    EventSpec(
        "report.html_requested",
        1,
        ReportHtmlRequested,
        "A job's HTML report and figures are wanted and not yet made (internal).",
    ),
    EventSpec(
        "report.html_ready",
        1,
        ReportHtmlReady,
        "A job's HTML report and its figures are stored (internal).",
    ),
    EventSpec("processing.failed", 1, ProcessingFailed, "A step failed for good; the job ends failed."),
    EventSpec(
        "user.password_reset_requested",
        1,
        PasswordResetRequested,
        "A password reset link waits to be delivered (internal).",
    ),
    EventSpec("partner.rejected", 1, PartnerRejected, "A message from an unknown publisher was refused."),
    EventSpec(
        "organisation.retention_changed",
        1,
        OrganisationRetentionChanged,
        "An organisation's retention period changed (internal).",
    ),
    EventSpec(
        "job.expired",
        1,
        JobExpired,
        "A job's files are to be deleted, after retention or on request; its record stays (internal).",
    ),
)
_BY_KEY = {spec.routing_key: spec for spec in EVENTS}
_BY_MODEL = {spec.model: spec for spec in EVENTS}


class UnknownEventError(ValueError):
    pass


def spec_for_model(model: type[BaseModel]) -> EventSpec:
    return _BY_MODEL[model]  # type: ignore[index]


def spec_for_key(routing_key: str) -> EventSpec:
    try:
        return _BY_KEY[routing_key]
    except KeyError:
        raise UnknownEventError(f"unknown event type {routing_key!r}") from None


def parse_data(envelope: RawEnvelope) -> Any:
    """Validate an envelope's data against its type's model and version."""
    spec = spec_for_key(envelope.type)
    if envelope.schema_version != spec.version and envelope.schema_version not in spec.also_reads:
        raise UnknownEventError(
            f"{envelope.type} schema version {envelope.schema_version} not supported (expected {spec.version})"
        )
    return spec.model.model_validate(envelope.data)
