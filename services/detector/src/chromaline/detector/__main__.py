"""``chromaline-detector``: run the detector service or migrate its schema."""

import sys

from chromaline.common.entrypoint import main as run
from chromaline.detector.service import ENTRY


def main() -> None:
    sys.exit(run(ENTRY))


if __name__ == "__main__":
    main()
