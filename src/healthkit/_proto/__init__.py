"""Generated protobuf code (see README.md here); regenerate with ``python scripts/gen_protos.py``."""
