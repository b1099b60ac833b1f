"""The benchmarks: commands that print figures (training and loading speed, frame extraction,
decoders, the frame layouts at scale). None of them is a test; nothing imports them but the CLI."""
