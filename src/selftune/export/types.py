"""The GGUF tensor types ``selftune export --format gguf --type`` offers: named here, without importing gguf, so
the command line lists them without loading numpy."""

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
DEFAULT_GGUF_TYPE = "f16"
