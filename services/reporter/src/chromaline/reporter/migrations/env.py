from chromaline.common.db.migrations import run_migrations_in_env
from chromaline.reporter.models import Base

run_migrations_in_env(Base.metadata)
