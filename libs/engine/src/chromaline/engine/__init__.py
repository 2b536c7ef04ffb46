"""The colour engine: bytes of a photo in; its chart, measurements, correction, ratings and
corrected bytes out. No bus, no database, no files: services, the CLI, the bench and the demo
call it and do their own I/O."""
