"""``chromaline-auth``: run the auth service or migrate its schema."""

import sys

from chromaline.auth.service import ENTRY
from chromaline.common.entrypoint import main as run


def main() -> None:
    sys.exit(run(ENTRY))


if __name__ == "__main__":
    main()
