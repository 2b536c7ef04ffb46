from chromaline.common.db.migrations import run_migrations_in_env
from chromaline.corrector.models import Base

run_migrations_in_env(Base.metadata)
