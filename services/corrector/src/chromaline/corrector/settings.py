from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings


class CorrectorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    port: int = 8082
    max_pixels: int = 150_000_000
    cube_size: int = 33
