"""The ``chromaline`` command: the engine on local files, the services, the standalone system.

OpenBLAS is held to one thread per process before NumPy loads: the engine's matrices are tiny,
and on a busy machine (several services sharing the cores) BLAS threads spinning against each
other turn a 0.1 ms decomposition into 50–100 ms. Set OPENBLAS_NUM_THREADS to override.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
