"""Data preparation: synthetic videos, frame extraction and annotation lists."""
