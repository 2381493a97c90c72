"""Notes: JSON in, YAML out."""
