"""Downloading a job's files over the API as a client would."""

from __future__ import annotations

import time

import httpx


def made_on_request(client: httpx.Client, path: str, timeout: float) -> httpx.Response:
    """A file the system makes on its first download (the PDF report): asked again, after the
    ``Retry-After`` it gives, for as long as the gateway answers 202 (still being made)."""
    deadline = time.monotonic() + timeout
    while (response := client.get(path).raise_for_status()).status_code == 202:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was still being made after {timeout:.0f} s")
        time.sleep(float(response.headers.get("Retry-After", "5")))
    return response
