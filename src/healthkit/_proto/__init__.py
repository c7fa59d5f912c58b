"""Generated protobuf code (see README.md); regenerate: ``python scripts/gen_protos.py``."""
