"""Engine commands: correct photos, make profiles and show what was measured, with no services.

The engine (OpenCV, colour-science) is imported by the commands that run it, not when the
``chromaline`` command starts, so ``chromaline serve gateway`` never loads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

import typer
from rich.console import Console
from rich.progress import Progress

if TYPE_CHECKING:
    from chromaline.common.measurements import OtherChart
    from chromaline.engine.charts import Edition
    from chromaline.engine.correct import CorrectionResult
    from chromaline.engine.custom_chart import ChartDefinition
    from chromaline.engine.dcp import CalibrationLight
    from chromaline.engine.fit import ObjectiveChoice
    from chromaline.engine.icc import OutputSpace
    from chromaline.engine.profile import Profile

profile_app = typer.Typer(
    help="Correction profiles: fitted on one chart shot, reused on a session.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

ChartOption = Annotated[
    str,
    typer.Option(
        help="auto, classic24, digital_sg or aruco_classic24; with --layout, a CGATS.17 file of the chart's values."
    ),
]
LayoutOption = Annotated[
    str | None,
    typer.Option(help="Rows×columns of a custom chart (e.g. 5x7): --chart is then its CGATS file."),
]
GapOption = Annotated[
    float, typer.Option(help="Custom chart: body between patches, share of the patch side.")
]
MarginOption = Annotated[
    float, typer.Option(help="Custom chart: body around the grid, share of the patch side.")
]
MethodOption = Annotated[
    str, typer.Option(help="auto, white_balance, linear3x3, affine3x4, root_polynomial or polynomial.")
]
EditionOption = Annotated[str, typer.Option(help="Reference edition of the chart: 2014 or 2005.")]
ObjectiveOption = Annotated[
    str,
    typer.Option(
        help="What the fit minimises: auto (the lower cross-validated ΔE2000), least_squares or delta_e2000."
    ),
]
SpaceOption = Annotated[
    str, typer.Option("--space", help="Output colour space: srgb, display-p3, adobe-rgb or prophoto.")
]
CameraWhiteBalanceOption = Annotated[
    bool,
    typer.Option(
        help="RAW files: apply the camera's white balance when decoding (the fit absorbs it anyway)."
    ),
]
EXTENSIONS = {"jpeg": "jpg", "png": "png", "tiff": "tif"}


UNKNOWN_CARD_HINT = (
    "if it is another maker's card, give its definition: --chart <its CGATS.17 file> "
    "--layout <rows>x<columns> (and --gap, --margin)"
)


def _space(value: str) -> OutputSpace:
    from chromaline.engine.icc import OUTPUT_SPACES

    if value not in OUTPUT_SPACES:
        raise typer.BadParameter(f"--space is one of {', '.join(OUTPUT_SPACES)}")
    return value


def _read(path: Path) -> bytes:
    from chromaline.engine.correct import EngineError

    try:
        return path.read_bytes()
    except OSError as error:
        raise EngineError("unreadable_file", f"cannot read {path}: {error.strerror}") from None


def _load_profile(path: Path | None) -> Profile | None:
    from chromaline.engine.profile import ProfileError, load_profile

    if path is None:
        return None
    try:
        return load_profile(path.read_bytes())
    except (OSError, ProfileError) as error:
        err_console.print(f"[red]cannot use profile {path}[/red]: {error}")
        raise typer.Exit(2) from None


def _custom_chart(chart: str, layout: str | None, gap: float, margin: float) -> ChartDefinition | None:
    """The custom chart that ``--chart FILE --layout RxC`` describe, or None without ``--layout``."""
    if layout is None:
        return None
    from pydantic import ValidationError

    from chromaline.common.cgats import CgatsError, parse_cgats
    from chromaline.common.events.contracts import CustomChart
    from chromaline.engine.custom_chart import ChartDefinition

    rows, _, columns = layout.lower().partition("x")
    if not (rows.isdigit() and columns.isdigit()):
        raise typer.BadParameter(f"--layout is rows×columns, e.g. 5x7, not {layout!r}")
    path = Path(chart)
    try:
        table = parse_cgats(_read(path).decode("utf-8"))
        checked = CustomChart.from_reference(
            table, name=path.stem or "custom", rows=int(rows), columns=int(columns), gap=gap, margin=margin
        )
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{path}: not UTF-8 text") from None
    except CgatsError as error:
        raise typer.BadParameter(f"{path}: {error}") from None
    except ValidationError as error:
        raise typer.BadParameter(f"{path}: {error.errors()[0]['msg']}") from None
    return ChartDefinition.from_contract(checked)


def _objective(value: str) -> ObjectiveChoice:
    from chromaline.engine.fit import OBJECTIVES

    if value not in ("auto", *OBJECTIVES):
        raise typer.BadParameter("objective is auto, least_squares or delta_e2000")
    return cast("ObjectiveChoice", value)


def _edition(value: str) -> Literal["2005", "2014"]:
    if value not in ("2005", "2014"):
        raise typer.BadParameter("edition is 2014 or 2005")
    return cast(Literal["2005", "2014"], value)


def correct(
    photos: Annotated[
        list[Path],
        typer.Argument(help="Photos to correct: JPEG, PNG, TIFF, WebP, HEIC/HEIF, AVIF, DNG or camera RAW."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the corrected photos and their profiles.")],
    profile: Annotated[
        Path | None, typer.Option(help="Apply this profile instead of each photo's own chart.")
    ] = None,
    method: MethodOption = "auto",
    objective: ObjectiveOption = "auto",
    chart: ChartOption = "auto",
    edition: EditionOption = "2014",
    output_format: Annotated[str, typer.Option("--format", help="jpeg, png or tiff.")] = "jpeg",
    bit_depth: Annotated[int, typer.Option(help="8 or 16 (PNG and TIFF).")] = 8,
    guideline: Annotated[
        str, typer.Option(help="Rating guideline the report leads with (fadgi2016, metamorfoze2, …).")
    ] = "fadgi2016",
    space: SpaceOption = "srgb",
    preview: Annotated[
        bool | None, typer.Option(help="Also write a small sRGB JPEG preview (default: for RAW files).")
    ] = None,
    camera_white_balance: CameraWhiteBalanceOption = False,
    layout: LayoutOption = None,
    gap: GapOption = 0.1,
    margin: MarginOption = 0.5,
) -> None:
    """Detect, fit, apply and measure each photo locally; print ΔE2000 before and after.

    RAW files are corrected from linear camera RGB; a wide-gamut 16-bit TIFF keeps most of it
    (``--format tiff --bit-depth 16 --space prophoto``)."""
    from chromaline.engine.correct import EngineError, correct_photo
    from chromaline.engine.image_io import UnsupportedImageError
    from chromaline.engine.profile import dump_profile
    from chromaline.engine.rating import guideline_named

    try:
        rating_guideline = guideline_named(guideline)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if output_format not in EXTENSIONS or bit_depth not in (8, 16):
        raise typer.BadParameter("--format is jpeg, png or tiff and --bit-depth 8 or 16")
    saved = _load_profile(profile)
    custom = _custom_chart(chart, layout, gap, margin)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    failures = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("correcting", total=len(photos))
        for photo in photos:
            try:
                result = correct_photo(
                    _read(photo),
                    chart_type="auto" if custom else chart,
                    method=method,  # type: ignore[arg-type]
                    objective=_objective(objective),
                    edition=_edition(edition),
                    profile=saved,
                    output_format=output_format,  # type: ignore[arg-type]
                    bit_depth=bit_depth,  # type: ignore[arg-type]
                    source_filename=photo.name,
                    guideline=rating_guideline,
                    output_space=_space(space),
                    preview=preview,
                    white_balance="camera" if camera_white_balance else "none",
                    chart=custom,
                )
            except (EngineError, UnsupportedImageError) as error:
                failures += 1
                lines.append(f"[red]{photo.name}: {error.code}[/red]: {error}")
                if error.code == "unknown_chart":
                    lines.append(f"  [yellow]hint[/yellow]: {UNKNOWN_CARD_HINT}")
                progress.advance(task)
                continue
            target = out / f"{photo.stem}.corrected.{EXTENSIONS[result.encoded.format]}"
            target.write_bytes(result.encoded.data)
            if result.preview is not None:
                (out / f"{photo.stem}.preview.jpg").write_bytes(result.preview.data)
            (out / f"{photo.stem}.profile.json").write_text(dump_profile(result.profile), encoding="utf-8")
            measurements = result.measurements(photo.name)
            (out / f"{photo.stem}.measurements.json").write_text(
                measurements.model_dump_json(indent=2), encoding="utf-8"
            )
            report = result.report
            chart_found = result.measurement.detection.chart_type if result.measurement else "no chart"
            delta_e = (
                f"ΔE2000 {report.before['CIE 2000'].mean:.2f} → {report.after['CIE 2000'].mean:.2f}, {result.rating_after}"
                if report
                else "ΔE not measured (no chart)"
            )
            lines.append(f"{photo.name}: {chart_found}, {result.method_label}, {delta_e} → {target}")
            lines += [f"  [yellow]warning[/yellow] {w.code}: {w.message}" for w in measurements.warnings]
            lines += [
                f"  also in the photo: {_checked_chart_line(other)}" for other in measurements.other_charts
            ]
            lines.extend(f"  [yellow]note[/yellow]: {note}" for note in result.notes)
            progress.advance(task)
    for line in lines:
        console.print(line, soft_wrap=True)
    if failures:
        err_console.print(f"[red]{failures} of {len(photos)} photos could not be corrected[/red]")
        raise typer.Exit(1)


@profile_app.command("create")
def profile_create(
    chart_photo: Annotated[
        Path, typer.Argument(help="A photo with the chart in it, shot under the session's light.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Profile JSON to write (default: beside the photo).")
    ] = None,
    cube: Annotated[Path | None, typer.Option(help="Also write the profile as a .cube 3D LUT.")] = None,
    icc: Annotated[
        Path | None,
        typer.Option(
            help="Also write an ICC input profile (matrix/shaper; needs a 3×3 method, e.g. linear3x3)."
        ),
    ] = None,
    dcp: Annotated[
        Path | None,
        typer.Option(
            help="RAW chart shots: also write a DNG Camera Profile (3×3; a linear3x3 fit is made for it "
            "when the chosen method is not one)."
        ),
    ] = None,
    dcp_light: Annotated[
        str,
        typer.Option(help="The light the chart was shot under, for the DCP: A, D50, D55, D65, D75 or F2."),
    ] = "D50",
    dcp_second_chart: Annotated[
        Path | None,
        typer.Option(
            help="A second RAW chart shot, same camera, under another light (--dcp-second-light): the DCP "
            "gets both calibrations, which raw converters interpolate between by the photo's white balance."
        ),
    ] = None,
    dcp_second_light: Annotated[
        str, typer.Option(help="The light of --dcp-second-chart: A, D50, D55, D65, D75 or F2.")
    ] = "D65",
    method: MethodOption = "auto",
    objective: ObjectiveOption = "auto",
    chart: ChartOption = "auto",
    edition: EditionOption = "2014",
    camera_white_balance: CameraWhiteBalanceOption = False,
    layout: LayoutOption = None,
    gap: GapOption = 0.1,
    margin: MarginOption = 0.5,
) -> None:
    """Fit a correction on one chart photo (a RAW file makes a camera profile) and save it."""
    _check_dcp_options(dcp, dcp_light, dcp_second_chart, dcp_second_light)
    if dcp is not None and camera_white_balance:
        err_console.print(
            "[red]--dcp[/red]: a DCP is made from the camera's own RGB, without its white balance"
        )
        raise typer.Exit(2)
    from chromaline.engine.correct import EngineError, correct_photo
    from chromaline.engine.image_io import UnsupportedImageError
    from chromaline.engine.profile import ProfileError, dump_profile, to_cube, to_icc

    custom = _custom_chart(chart, layout, gap, margin)
    try:
        result = correct_photo(
            _read(chart_photo),
            chart_type="auto" if custom else chart,
            method=method,  # type: ignore[arg-type]
            objective=_objective(objective),
            edition=_edition(edition),
            source_filename=chart_photo.name,
            preview=False,
            white_balance="camera" if camera_white_balance else "none",
            chart=custom,
        )
    except (EngineError, UnsupportedImageError) as error:
        err_console.print(f"[red]{chart_photo}: {error.code}[/red]: {error}")
        raise typer.Exit(1) from None
    target = out or chart_photo.with_suffix(".profile.json")
    target.write_text(dump_profile(result.profile), encoding="utf-8")
    statistics = result.profile.statistics
    console.print(
        f"{target}: {result.method_label}, ΔE2000 training {statistics.training_delta_e2000:.2f}, "
        f"cross-validated {statistics.cross_validated_delta_e2000:.2f} over {statistics.patch_count} patches"
    )
    if cube is not None:
        cube.write_text(to_cube(result.profile), encoding="utf-8")
        console.print(f"{cube}: 33³ LUT, sRGB in and out")
    if icc is not None:
        try:
            icc.write_bytes(to_icc(result.profile))
        except ProfileError as error:
            err_console.print(f"[red]{icc}: not written[/red]: {error.message}")
            raise typer.Exit(1) from None
        encoding = (
            "linear camera RGB" if result.profile.input_encoding == "linear-camera" else "sRGB-encoded RGB"
        )
        console.print(f"{icc}: ICC input profile, {encoding} in")
    if dcp is not None:
        second = None
        if dcp_second_chart is not None:
            light = cast("CalibrationLight", dcp_second_light)
            second = (_second_calibration(result, dcp_second_chart, dcp, _edition(edition), custom), light)
        _write_dcp(result, dcp, cast("CalibrationLight", dcp_light), edition=_edition(edition), second=second)


def _check_dcp_options(dcp: Path | None, light: str, second_chart: Path | None, second_light: str) -> None:
    from chromaline.engine.dcp import CALIBRATION_LIGHTS

    if second_chart is not None and dcp is None:
        err_console.print("[red]--dcp-second-chart[/red]: only with --dcp")
        raise typer.Exit(2)
    chosen = [("--dcp-light", light)] + ([("--dcp-second-light", second_light)] if second_chart else [])
    for option, value in chosen if dcp is not None else []:
        if value not in CALIBRATION_LIGHTS:
            err_console.print(f"[red]{option}[/red]: {value!r} is not one of {', '.join(CALIBRATION_LIGHTS)}")
            raise typer.Exit(2)
    if second_chart is not None and second_light == light:
        err_console.print(
            f"[red]--dcp-second-light[/red]: both chart shots are under {light}: use another light"
        )
        raise typer.Exit(2)


def _second_calibration(
    result: CorrectionResult, photo: Path, target: Path, edition: Edition, custom: ChartDefinition | None
) -> Profile:
    """The 3×3 RAW profile of the second chart shot of a two-illuminant DCP (same chart as the first)."""
    from chromaline.engine.correct import EngineError, fit_from_measurements, measure
    from chromaline.engine.image_io import UnsupportedImageError

    chart_type = result.measurement.detection.chart_type if result.measurement else "auto"
    try:
        measurement = measure(_read(photo), chart_type=chart_type, edition=edition, chart=custom)
        fit = fit_from_measurements(
            measurement.patches,
            measurement.detection.chart_type,
            edition,
            "linear3x3",
            chart=custom,
            linear_camera=measurement.image.linear_camera,
        )
    except (EngineError, UnsupportedImageError) as error:
        err_console.print(f"[red]{target}: not written[/red]: {photo}: {error.code}: {error}")
        raise typer.Exit(1) from None
    console.print(
        f"{photo}: linear3x3 fit for the DCP's second calibration, cross-validated ΔE2000 "
        f"{fit.cross_validation.cross_validated_mean:.2f}"
    )
    return fit.profile(source_filename=photo.name, image=measurement.image)


def _write_dcp(
    result: CorrectionResult,
    target: Path,
    light: CalibrationLight,
    *,
    edition: Edition,
    second: tuple[Profile, CalibrationLight] | None = None,
) -> None:
    """The DCP of a RAW chart fit: the fit itself when it is 3×3, else a linear3x3 fit of the same
    patches; with ``second``, a second calibration from another chart shot."""
    from chromaline.engine.correct import EngineError, fit_from_measurements
    from chromaline.engine.profile import ProfileError, to_dcp

    profile = result.profile
    if profile.method not in ("white_balance", "linear3x3") and result.measurement is not None:
        try:
            matrix_fit = fit_from_measurements(
                result.measurement.patches,
                result.measurement.detection.chart_type,
                edition,
                "linear3x3",
                linear_camera=result.measurement.image.linear_camera,
            )
        except EngineError as error:
            err_console.print(f"[red]{target}: not written[/red]: {error.message}")
            raise typer.Exit(1) from None
        profile = profile.model_copy(
            update={
                "method": "linear3x3",
                "degree": 1,
                "coefficients": matrix_fit.correction.coefficients.tolist(),
            }
        )
        console.print(
            f"{target}: linear3x3 fit for the DCP, cross-validated ΔE2000 "
            f"{matrix_fit.cross_validation.cross_validated_mean:.2f}"
        )
    try:
        target.write_bytes(to_dcp(profile, light, second))
    except ProfileError as error:
        err_console.print(f"[red]{target}: not written[/red]: {error.message}")
        raise typer.Exit(1) from None
    lights = light if second is None else f"{light} and {second[1]}"
    console.print(f"{target}: DNG Camera Profile for {profile.camera_model}, calibrated under {lights}")


def inspect(
    photo: Annotated[Path, typer.Argument(help="A photo with a chart in it.")],
    out: Annotated[Path, typer.Option(help="PNG to draw the detected chart and sampled patches on.")],
    chart: ChartOption = "auto",
    edition: EditionOption = "2014",
    max_side: Annotated[int, typer.Option(help="Longest side of the overlay image.")] = 2000,
) -> None:
    """Draw what was measured: the chart outline and each patch's sampled region, numbered; any
    other chart found is outlined in blue."""
    import cv2
    import numpy as np

    from chromaline.engine.apply import apply_to_linear
    from chromaline.engine.correct import EngineError, measure
    from chromaline.engine.fit import Correction
    from chromaline.engine.image_io import UnsupportedImageError, reduced, to_linear

    if not cv2.haveImageWriter(str(out)):  # OpenCV picks the format by the name's extension
        err_console.print(f"[red]cannot write {out}[/red]: give the overlay a .png (or .jpg) name")
        raise typer.Exit(1)
    try:
        measurement = measure(_read(photo), chart_type=chart, edition=_edition(edition))
    except (EngineError, UnsupportedImageError) as error:
        err_console.print(f"[red]{photo}: {error.code}[/red]: {error}")
        raise typer.Exit(1) from None
    image = measurement.image
    small = reduced(image, max_side)
    scale = small.width / image.width
    shown = np.asarray(apply_to_linear(to_linear(small), Correction.identity()), dtype=np.uint8)
    canvas = np.ascontiguousarray(shown[:, :, ::-1])
    thickness = max(1, round(2 * max(canvas.shape[:2]) / 1000))
    for other in measurement.other_charts:  # blue, as in the report: found, not fitted
        outline = np.round(np.asarray(other.corners) * scale).astype(np.int32)
        cv2.polylines(canvas, [outline], isClosed=True, color=(230, 130, 30), thickness=thickness * 2)
    outline = np.round(np.asarray(measurement.detection.corners) * scale).astype(np.int32)
    cv2.polylines(canvas, [outline], isClosed=True, color=(0, 220, 255), thickness=thickness * 2)
    for patch, used in zip(measurement.patches, measurement.used, strict=True):
        quad = np.round(np.asarray(patch.quad) * scale).astype(np.int32)
        colour = (80, 200, 80) if used else (60, 60, 230)
        cv2.polylines(canvas, [quad], isClosed=True, color=colour, thickness=thickness)
        x, y = quad.min(axis=0)
        cv2.putText(
            canvas,
            str(patch.index + 1),
            (int(x), int(y) - 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            colour,
            thickness,
        )
    if not cv2.imwrite(str(out), canvas):
        err_console.print(f"[red]cannot write {out}[/red]")
        raise typer.Exit(1)
    detection = measurement.detection
    flagged = {patch.name: patch.flags for patch in measurement.patches if patch.flags}
    console.print(
        json.dumps(
            {
                "chart_type": detection.chart_type,
                "confidence": round(float(detection.confidence), 3),
                "orientation_degrees": detection.orientation_degrees,
                "charts_found": measurement.charts_found,
                "other_charts": [
                    {
                        "chart_type": other.chart_type,
                        "confidence": round(float(other.confidence), 3),
                        "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in other.corners],
                    }
                    for other in measurement.other_charts
                ],
                "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in detection.corners],
                "delta_e2000_as_shot": round(measurement.delta_e2000.mean, 2),
                "flagged_patches": flagged,
                "overlay": str(out),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _checked_chart_line(other: OtherChart) -> str:
    """A chart found beside the fitted one, with the correction's check on it."""
    found = f"{other.chart_type} (confidence {other.confidence:.2f})"
    if other.delta_e2000_before is None or other.delta_e2000_after is None:
        return f"{found}, no usable patch to check"
    return (
        f"{found}, ΔE2000 {other.delta_e2000_before.mean:.2f} → {other.delta_e2000_after.mean:.2f} "
        f"over its {other.patches_compared} patches, none of them fitted"
    )


def register(app: typer.Typer) -> None:
    app.command()(correct)
    app.command()(inspect)
    app.add_typer(profile_app, name="profile")
