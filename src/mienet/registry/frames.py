"""How extracted frames are named and laid out on disk, defined here only."""

from __future__ import annotations

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")
IMAGE_TEMPLATE = "img_{:05d}.{ext}"  # the frame file names (1-based)
FRAME_TEMPLATE = IMAGE_TEMPLATE.replace("{ext}", "jpg")  # what the loader reads by default
MANIFEST_NAME = "manifest.csv"
# The first bytes of the two frame encodings extract-frames writes (--ext jpg, png)
JPEG_START = b"\xff\xd8"
PNG_START = b"\x89PNG\r\n\x1a\n"
LAYOUTS = ("packed", "folders")
DEFAULT_LAYOUT = "packed"
