from chromaline.auth.models import Base
from chromaline.common.db.migrations import run_migrations_in_env

run_migrations_in_env(Base.metadata)
