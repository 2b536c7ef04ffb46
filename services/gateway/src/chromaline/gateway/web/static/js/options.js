// The processing options the API accepts, with the words people see for them.

export const CHART_TYPES = [
  ["auto", "Detect automatically"],
  ["classic24", "ColorChecker Classic (24 patches)"],
  ["digital_sg", "ColorChecker Digital SG (140 patches)"],
  ["vinyl", "ColorChecker Classic vinyl"],
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

export const BIT_DEPTHS = [
  ["8", "8 bits per channel"],
  ["16", "16 bits per channel (PNG or TIFF)"],
];

export const STATES = [
  ["", "Any state"],
  ["queued", "Queued"],
  ["detecting", "Detecting"],
  ["correcting", "Correcting"],
  ["reporting", "Reporting"],
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

export function accepted(name) {
  const lower = name.toLowerCase();
  return ACCEPTED.some((extension) => lower.endsWith(extension));
}

export function stateLabel(state) {
  return (STATES.find(([value]) => value === state) || [state, state])[1];
}

/** Why a job failed, in words; `message` from the pipeline adds the specifics. */
export const REASONS = {
  no_chart: "No colour chart was found in the photo.",
  chart_too_small: "The chart is too small in the photo to measure reliably.",
  overexposed: "The chart is overexposed: its light patches are clipped.",
  underexposed: "The chart is underexposed: its dark patches are lost in noise.",
  unsupported_chart: "This kind of chart is not supported.",
};

export const MANUAL_CORNER_REASONS = new Set(["no_chart", "chart_too_small"]);
