"""``chromaline-corrector``: run the corrector service or migrate its schema."""

import sys

from chromaline.common.entrypoint import main as run
from chromaline.corrector.service import ENTRY


def main() -> None:
    sys.exit(run(ENTRY))


if __name__ == "__main__":
    main()
