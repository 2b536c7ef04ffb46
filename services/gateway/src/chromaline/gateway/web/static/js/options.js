// The processing options the API accepts, with the words people see for them.

export const CHART_TYPES = [
  ["auto", "Detect automatically"],
  ["classic24", "ColorChecker Classic (24 patches)"],
  ["digital_sg", "ColorChecker Digital SG (140 patches)"],
  ["aruco_classic24", "Classic 24 with ArUco markers"],
];

export const METHODS = [
  ["auto", "Best by cross-validation"],
  ["white_balance", "White balance only"],
  ["linear3x3", "Linear 3×3 matrix"],
  ["affine3x4", "Affine 3×4 matrix"],
  ["root_polynomial", "Root-polynomial"],
  ["polynomial", "Polynomial"],
];

export const EDITIONS = [
  ["2014", "2014 and later"],
  ["2005", "Before November 2014"],
];

export const OUTPUT_FORMATS = [
  ["jpeg", "JPEG"],
  ["png", "PNG"],
  ["tiff", "TIFF"],
];

export const OUTPUT_SPACES = [
  ["srgb", "sRGB"],
  ["display-p3", "Display P3"],
  ["adobe-rgb", "Adobe RGB (1998)"],
  ["prophoto", "ProPhoto RGB (16-bit TIFF or PNG)"],
];

/** The rating guidelines the engine rates against (no others: see docs/colour-engine.md). */
export const GUIDELINES = [
  ["fadgi2016", "FADGI 2016 (stars)"],
  ["metamorfoze2", "Metamorfoze 2.0 (Full, Light)"],
];

export const BIT_DEPTHS = [
  ["8", "8 bits per channel"],
  ["16", "16 bits per channel (PNG or TIFF)"],
];

export const STATES = [
  ["", "Any state"],
  ["queued", "Queued"],
  ["detecting", "Detecting"],
  ["correcting", "Correcting"],
  ["done", "Done"],
  ["failed", "Failed"],
  ["expired", "Expired"],
];

/** States a job never leaves: its result (or refusal) is known, or its files are deleted. */
export const TERMINAL = new Set(["done", "failed", "expired"]);

export const ACCEPTED = [
  ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif",
  ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".zip",
];

/** The formats the server reads, as people name them (the server checks each file's content). */
export const PHOTO_FORMATS = "JPEG, PNG, TIFF, WebP, HEIC, AVIF, DNG or camera RAW";

export function accepted(name) {
  const lower = name.toLowerCase();
  return ACCEPTED.some((extension) => lower.endsWith(extension));
}

/** A job deleted on request stays in its batch's list, but no filter offers it. */
const UNFILTERED_STATES = [["deleted", "Deleted"]];

export function stateLabel(state) {
  return ([...STATES, ...UNFILTERED_STATES].find(([value]) => value === state) || [state, state])[1];
}

/** Why a job failed, in words; `message` from the pipeline adds the specifics. */
export const REASONS = {
  no_chart: "No colour chart was found in the photo.",
  chart_too_small: "The chart is too small in the photo to measure reliably.",
  overexposed: "The chart is overexposed: its light patches are clipped.",
  underexposed: "The chart is underexposed: its dark patches are lost in noise.",
  unsupported_chart: "This kind of chart is not supported.",
  unknown_chart: "The card in the photo is not a supported chart: its colours are another card's.",
  low_confidence: "Chromaline may have found the chart, but is not sure it is the chart.",
  not_a_chart: "The corners given do not enclose the chart's patches.",
  processing_error: "Something went wrong while processing this photo. The error has been logged; sending the photo again will not help until it is fixed.",
};

/** Failures a person can put right by showing where the chart is. */
export const MANUAL_CORNER_REASONS = new Set(["no_chart", "chart_too_small", "low_confidence", "not_a_chart"]);

function nameIn(list, value) {
  return (list.find(([id]) => id === value) || [value, value])[1];
}

/** A chart type as people call it: "ColorChecker Classic (24 patches)", never `classic24`. */
/** One of the organisation's custom charts, for a list to choose from: "Studio card (5 × 7)". */
export function customChartLabel(chart) {
  return `${chart.name} (${chart.rows} × ${chart.columns})`;
}

export function chartName(chartType) {
  if (chartType === "custom") return "Custom chart";
  return chartType ? nameIn(CHART_TYPES, chartType) : "No chart";
}

/** A correction method in words: "Root-polynomial, degree 2", never `root_polynomial(degree=2)`. */
export function methodName(method) {
  if (!method) return "—";
  const match = /^([a-z0-9_]+)\(degree=(\d+)\)$/.exec(method);
  return match ? `${nameIn(METHODS, match[1])}, degree ${match[2]}` : nameIn(METHODS, method);
}

/** What a fit minimised, in words. */
export const OBJECTIVES = {
  least_squares: "least squares in linear RGB",
  delta_e2000: "the smallest mean ΔE₀₀",
};

/**
 * FADGI star levels in the guideline's own sense (best attainable down to a base level for
 * access copies), with the mean ΔE₀₀ each allows and the colour of its badge.
 */
export const RATING_LEVELS = [
  { stars: 4, limit: 2, tone: "best", words: "Best attainable: fit for the most demanding reproduction work." },
  { stars: 3, limit: 4, tone: "good", words: "Very good: fit for professional reproduction." },
  { stars: 2, limit: 5, tone: "fair", words: "Good: fine for general use, not for exacting reproduction." },
  { stars: 1, limit: 8, tone: "poor", words: "Basic: for reference and access copies only." },
  { stars: 0, limit: null, tone: "bad", words: "Below every level of the guideline: colours are visibly off." },
];

/** Metamorfoze 2.0 levels as the guideline names them, best first (`stars`: its rank), and below them. */
const METAMORFOZE_LEVELS = [
  { label: "Full", stars: 2, tone: "best", words: "Meets Full, the guideline's strictest level." },
  { label: "Light", stars: 1, tone: "fair", words: "Meets Light, not Full: for originals whose colour matters less." },
  { label: "below Light", stars: 0, tone: "bad", words: "Below every level of the guideline: colours are visibly off." },
];

/** A job's rating ("FADGI 2016 3-star", "Metamorfoze 2.0 Full") as its level, guideline and label;
 * null when not rated. */
export function ratingOf(rating) {
  if (!rating) return null;
  const starred = /^(.*?)\s*(below 1-star|(\d)-star)$/.exec(rating);
  if (starred) {
    const stars = starred[3] ? Number(starred[3]) : 0;
    const level = RATING_LEVELS.find((candidate) => candidate.stars === stars);
    return { ...level, guideline: starred[1] || "FADGI", label: stars ? `${stars}-star` : "below 1-star" };
  }
  const named = /^(Metamorfoze.*?)\s+(below Light|Full|Light)$/.exec(rating);
  if (!named) return null;
  return { ...METAMORFOZE_LEVELS.find((level) => level.label === named[2]), guideline: named[1] };
}

/** What a mean ΔE₀₀ looks like to a person, as the end of a sentence. */
export function deltaEMeaning(value) {
  if (value < 1) return "a difference the eye cannot see";
  if (value < 2) return "a difference only a trained eye sees, side by side";
  if (value < 4) return "a small difference, visible side by side";
  if (value < 8) return "a difference most people notice side by side";
  return "a difference anyone can see";
}

/** Problem codes from the API in words, each with what to do next; `detail` adds the specifics. */
export const PROBLEM_MESSAGES = {
  unsupported_media_type: `This file is not a photo Chromaline can read. Choose a ${PHOTO_FORMATS} photo, or a ZIP of them.`,
  filename_too_long: "This file's name is longer than the server accepts. Give the file a shorter name and add it again.",
  invalid_filename: "This file's name cannot be used. Rename the file and add it again.",
  file_too_large: "This file is larger than the server accepts. Export a smaller JPEG and upload that.",
  archive_too_large: "This ZIP is larger than the server accepts. Split it into smaller archives.",
  too_many_pixels: "This photo has more pixels than the server accepts. Resize it and try again.",
  corrupt_image: "This file could not be read as a photo. Check that it opens on your computer, then try again.",
  corrupt_archive: "This ZIP could not be opened. Make the archive again and upload it.",
  empty_archive: `This ZIP has no photos in it. Add ${PHOTO_FORMATS} photos to it and upload it again.`,
  unsafe_archive_path: "A file name points outside its own folder (a ZIP made with absolute paths or ..), so it was refused. Make the archive again from a plain folder.",
  archive_ratio_exceeded: "This ZIP expands to far more than its size and was refused. Upload the photos themselves.",
  too_many_files: "That is more files than one upload takes. Send them in smaller groups.",
  upload_rate_limited: "Too many uploads in a short time. Wait a minute and try again.",
  invalid_options: "One of the options was refused. Check the options under Advanced and try again.",
  invalid_corners: "The corners could not be read. Mark all four corners of the chart and try again.",
  profile_not_found: "That profile no longer exists. Choose another one, or none.",
  chart_not_found: "That chart no longer exists, or it belongs to another organisation. Choose another one, or none.",
  chart_id_required: "A custom chart has to be chosen by name. Pick it under “Custom chart”.",
  invalid_cgats: "The reference file could not be read as CGATS.17. Correct the line named here and add the chart again.",
  chart_patch_count_mismatch: "The rows and columns do not match the number of patches in the file. Check the layout.",
  invalid_chart_layout: "The layout was refused. Check the rows, columns, gap and margin.",
  chart_file_too_large: "This reference file is larger than the server accepts. A chart file needs only the sample ids and their values.",
  profile_not_ready: "This job has no correction to save yet. Wait until it has finished.",
  result_not_ready: "This result is not ready yet. Wait until the job has finished.",
  report_pdf_rendering: "The PDF report is still being made. Try the download again in a few seconds.",
  report_html_rendering: "The HTML report and its figures are still being drawn. Try again in a few seconds.",
  job_expired: "This job's files were deleted at the end of the retention period. Upload the photo again to correct it.",
  blob_missing: "This file is no longer stored. Upload the photo again to make it anew.",
  job_not_found: "This job does not exist, or it belongs to another organisation. Check the link, or find it in the history.",
  batch_not_found: "This upload does not exist, or it belongs to another organisation. Check the link, or find its photos in the history.",
  unknown_file: "This file is not available for this job.",
  weak_password: "This password is too short. Choose a longer one: a passphrase of a few words is easiest to remember.",
  invalid_credentials: "That did not match. Check what you typed and try again.",
  email_taken: "An account with this e-mail address already exists. Sign in, or reset its password.",
  invalid_reset_token: "This reset link has expired or was already used. Ask for a new link.",
  forbidden: "You are not allowed to do this. Ask an administrator of your organisation.",
  last_admin: "An organisation needs at least one administrator. Make someone else an administrator first.",
  network: "The server could not be reached. Check your connection and try again.",
};
