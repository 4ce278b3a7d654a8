"""Training package: stage trainers and loop helpers (imports the library, never the reverse)."""
