"""What FFmpeg says while OpenCV decodes a video: its messages, captured from file descriptor 2
(where they would otherwise land in the middle of a progress bar), and the last of them as the
reason a video failed (``mienet extract-frames``'s manifest)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

_FFMPEG_LINE = re.compile(r"^\[[^\]]* @ (?:0x)?[0-9a-fA-F]+\]\s*(.*)$")


@contextlib.contextmanager
def captured_stderr():
    """Capture what the C libraries (FFmpeg through OpenCV) print on file descriptor 2.

    FFmpeg's messages ("moov atom not found") would otherwise land in the middle of the
    progress bar; captured, the last of them becomes the reason a video failed. Yields a
    list that holds the captured lines once the block has ended.
    """
    lines: list[str] = []
    try:
        sink = tempfile.TemporaryFile()
    except OSError:  # nowhere to keep them: drop them
        sink = open(os.devnull, "w+b")
    with sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            try:
                sink.seek(0)
                text = sink.read(1 << 16).decode("utf-8", "replace")
            except OSError:
                text = ""
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def ffmpeg_reason(lines: list[str]) -> str:
    """The last FFmpeg message (without its ``[demuxer @ 0x...]`` prefix), or ''."""
    for line in reversed(lines):
        m = _FFMPEG_LINE.match(line)
        if m and m.group(1):
            return m.group(1)
    return ""


def with_reason(message: str, lines: list[str]) -> str:
    """``message``, with FFmpeg's reason from ``lines`` when it gave one."""
    reason = ffmpeg_reason(lines)
    return f"{message} (FFmpeg: {reason})" if reason else message
