"""``mienet predict VIDEO --checkpoint CKPT``: the five most likely classes of a raw video.

The video is decoded directly (no extraction step), sampled like the test protocol
(``T`` centred segments of ``L`` frames) and transformed like validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import torch

from mienet.engine.evaluate import view_scores
from mienet.engine.loading import load_model
from mienet.engine.performance import default_speed_config, prepare_model
from mienet.engine.runtime import setup_runtime
from mienet.engine.sampling import sample_indices
from mienet.engine.transforms import build_transform
from mienet.errors import MienetError
from mienet.released import class_names, find_entry


def read_video_frames(path: Path) -> torch.Tensor:
    """Every frame of a video as uint8 RGB ``(F, 3, H, W)`` (OpenCV)."""
    if not path.is_file():
        raise MienetError(f"video {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MienetError(f"cannot open video {path}: corrupt file or unsupported codec")
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(torch.from_numpy(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    cap.release()
    if not frames:
        raise MienetError(f"no frame could be decoded from {path}")
    return torch.stack(frames).permute(0, 3, 1, 2).contiguous()


def predict(video: str | Path, checkpoint: str | Path, top: int = 5, num_crops: int = 1,
            device: str = "auto", zoo: str | None = None, params: str | Path = "params.yaml") -> dict:
    """Top classes of a video, from a `mienet train` checkpoint or (``zoo``) a released one."""
    rt = setup_runtime(device, exclusive_gpu=False)
    if zoo:
        entry, data_root = find_entry(params, zoo)
        loaded = load_model(checkpoint, zoo_entry=entry, classes=class_names(entry, data_root), name=zoo)
    else:
        loaded = load_model(checkpoint)
    model, cfg, classes = loaded.model, loaded.config, loaded.classes
    frames = read_video_frames(Path(video))
    t, length = cfg["segments"], cfg["frames_per_segment"]
    idx = sample_indices(frames.shape[0], t, length, "test")  # (1, T, L)
    picked = frames[idx.flatten()]  # (T * L, 3, H, W)
    transform = build_transform(train=False, size=cfg["size"], num_crops=num_crops)
    views = transform(picked)  # (crops, T * L, 3, S, S)
    clips = views.view(num_crops, t, length, *views.shape[-3:]).unsqueeze(0)  # (1, V, T, L, 3, S, S)
    speed = default_speed_config(rt.device)
    model = prepare_model(model, rt.device, speed)
    probs = view_scores(model, clips, rt.device, speed)[0].cpu()
    values, labels = probs.topk(min(top, len(classes)))
    return {
        "video": str(video), "checkpoint": str(checkpoint), "frames": int(frames.shape[0]),
        "predictions": [{"label": int(y), "class": classes[int(y)], "probability": float(p)}
                        for p, y in zip(values, labels)],
    }


def add_arguments(parser) -> None:
    parser.add_argument("video", type=Path, help="a video file (mp4, avi, webm, mkv, mov)")
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a checkpoint of `mienet train`, or a released one with --zoo")
    parser.add_argument("--zoo", metavar="NAME",
                        help="the checkpoint is the released file of this zoo entry (see --params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml holding the zoo section (default: params.yaml)")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    parser.add_argument("--crops", type=int, default=1, choices=(1, 3))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    result = predict(args.video, args.checkpoint, top=args.top, num_crops=args.crops, device=args.device,
                     zoo=args.zoo, params=args.params)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['video']} ({result['frames']} frames):")
    for p in result["predictions"]:
        print(f"  {p['probability']:7.2%}  {p['class']}")
    return 0
