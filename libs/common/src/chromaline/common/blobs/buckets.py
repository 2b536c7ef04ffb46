"""Bucket names, one per kind of object; each bucket has a single writing service."""

ORIGINALS = "chromaline-originals"
"""Uploaded photos (written by the gateway, or by partners who publish image.uploaded)."""
CORRECTED = "chromaline-corrected"
"""Corrected images, profiles and measurements (written by the corrector)."""
REPORTS = "chromaline-reports"
"""Reports in JSON, HTML and PDF (written by the reporter)."""
