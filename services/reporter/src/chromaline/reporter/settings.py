from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from chromaline.common.settings import ServiceSettings


class ReporterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHROMALINE_", extra="ignore")

    port: int = 8083
