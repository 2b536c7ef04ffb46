"""The keys the corrector stores a job's files under, which expiry deletes by name."""

from __future__ import annotations

import uuid

from chromaline.corrector.handlers import corrected_file, result_keys


def test_the_corrected_image_is_named_with_one_dot() -> None:
    assert corrected_file(".jpg") == "corrected.jpg"


def test_result_keys_name_every_file_of_the_job() -> None:
    job_id = uuid.uuid4()
    assert result_keys(job_id) == [
        f"{job_id}/{name}"
        for name in (
            "corrected.jpg",
            "corrected.png",
            "corrected.tif",
            "profile.json",
            "profile.cube",
            "measurements.json",
            "preview-original.jpg",
            "preview-corrected.jpg",
        )
    ]
