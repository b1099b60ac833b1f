"""The clip pipeline on real frames: sampling, augmentation, decoding, determinism, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mienet.data.annotations import make_annotations
from mienet.data.frames import extract_frames
from mienet.data.synth import synthesize
from mienet.bench.decoders import compare_decoders
from mienet.bench.loader import measure_loader
from mienet.engine.dataset import ClipDataset, build_loader, collate_clips
from mienet.engine.decoding import DECODER, decode_frames
from mienet.engine.sampling import ClipSampler, sample_indices
from mienet.engine.transforms import IMAGENET_MEAN, IMAGENET_STD, MultiScaleCornerCrop, build_transform, normalise_clips
from mienet.errors import MienetError

FRAMES = 20
SIZE = 48
CROP = 32


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """3 classes x 2 clips of 20 frames at 48 px: videos, frames, annotations, and all.txt.
    The folders layout, one file per frame, so that a test may damage one frame (tests/test_pack.py
    reads the same clips from packs)."""
    root = tmp_path_factory.mktemp("clips")
    synthesize(root / "videos", classes=3, clips_per_class=2, frames=FRAMES, size=SIZE, jobs=1, progress=False)
    extract_frames(root / "videos", root / "frames", jobs=1, progress=False, layout="folders")
    make_annotations("folder", root / "annotations", videos=root / "videos", frames=root / "frames",
                     val_ratio=0.5)
    ann = root / "annotations"
    (ann / "all.txt").write_text((ann / "train.txt").read_text() + (ann / "val.txt").read_text())
    return root


def all_list(root: Path) -> Path:
    return root / "annotations" / "all.txt"


def one_clip_copy(dataset_root: Path, tmp_path: Path, lines: int = 1) -> tuple[Path, Path]:
    """A private copy of the first clip(s) (so a test may damage it) and a list naming them."""
    src_lines = all_list(dataset_root).read_text().splitlines()[:lines]
    out = []
    for n, line in enumerate(src_lines):
        path, frames, label = line.rsplit(maxsplit=2)
        shutil.copytree(dataset_root / path, tmp_path / "frames" / f"clip {n}")
        out.append(f"frames/clip {n} {frames} {label}\n")
    (tmp_path / "list.txt").write_text("".join(out))
    return tmp_path / "list.txt", tmp_path


# --------------------------------------------------------------------------- sampling

def segment_bounds(num_frames: int, T: int, L: int) -> list[tuple[int, int]]:
    """[lo, hi) of the start frame of each segment."""
    span = max(num_frames - L + 1, 1)
    return [(int(t * span / T), max(int((t + 1) * span / T), int(t * span / T) + 1)) for t in range(T)]


def test_train_offsets_are_random_but_inside_their_segments():
    g = torch.Generator().manual_seed(0)
    bounds = segment_bounds(50, 3, 4)
    starts = [set() for _ in range(3)]
    for _ in range(200):
        idx = sample_indices(50, 3, 4, "train", generator=g)
        assert idx.shape == (1, 3, 4) and idx.dtype == torch.long
        for t, (lo, hi) in enumerate(bounds):
            s = int(idx[0, t, 0])
            assert lo <= s < hi
            assert idx[0, t].tolist() == list(range(s, s + 4))  # L consecutive frames
            starts[t].add(s)
    assert all(len(s) == hi - lo for s, (lo, hi) in zip(starts, bounds))  # every offset occurs


def test_train_offsets_follow_the_generator_or_the_global_rng():
    a = sample_indices(100, 8, 4, "train", generator=torch.Generator().manual_seed(3))
    b = sample_indices(100, 8, 4, "train", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = sample_indices(100, 8, 4, "train")
    torch.manual_seed(5)
    assert torch.equal(c, sample_indices(100, 8, 4, "train"))


def test_val_and_test_take_segment_centres():
    expected = [[3, 4, 5, 6], [10, 11, 12, 13], [17, 18, 19, 20]]  # 21 starts, 7 per segment
    assert sample_indices(24, 3, 4, "val").tolist() == [expected]
    assert sample_indices(24, 3, 4, "test").tolist() == [expected]


def test_indices_clamp_at_the_last_frame_for_short_videos():
    assert sample_indices(5, 2, 4, "val").tolist() == [[[0, 1, 2, 3], [1, 2, 3, 4]]]
    assert sample_indices(2, 3, 4, "val").tolist() == [[[0, 1, 1, 1]] * 3]  # fewer frames than T and L
    assert sample_indices(1, 8, 4, "train").eq(0).all()
    for n in range(1, 40):  # fewer than T * L and more
        for mode in ("train", "val"):
            for dense in (False, True):
                idx = sample_indices(n, 3, 4, mode, num_clips=2, dense=dense)
                assert idx.shape == (2, 3, 4)
                assert 0 <= idx.min() and idx.max() <= n - 1
                starts = idx[..., 0]
                assert (starts[:, 1:] >= starts[:, :-1]).all()  # segments stay in temporal order
    with pytest.raises(ValueError):
        sample_indices(0, 3, 4, "val")
    with pytest.raises(ValueError):
        sample_indices(10, 3, 4, "predict")


def test_twice_adds_a_clip_half_a_segment_earlier():
    idx = sample_indices(24, 3, 4, "test", num_clips=2)
    assert idx.shape == (2, 3, 4)
    assert idx[0].tolist() == sample_indices(24, 3, 4, "test")[0].tolist()
    assert idx[1, :, 0].tolist() == [0, 7, 14]  # the segment starts


def test_dense_uses_a_fixed_stride_and_spreads_clips_over_the_video():
    idx = sample_indices(200, 8, 4, "test", num_clips=3, dense=True)
    starts = idx[..., 0]
    assert (starts[:, 1:] - starts[:, :-1]).eq(64 // 8).all()
    assert starts[0, 0] == 0 and idx[-1, -1, -1] == 199  # first and last window touch the ends
    one = sample_indices(200, 8, 4, "test", dense=True)[0, :, 0]
    assert (one[1:] - one[:-1]).eq(8).all() and one[0] == (200 - 4 - 56) // 2  # the centre window
    g = torch.Generator().manual_seed(0)
    firsts = {int(sample_indices(200, 8, 4, "train", generator=g, dense=True)[0, 0, 0]) for _ in range(50)}
    assert len(firsts) > 10 and max(firsts) <= 200 - 4 - 56
    short = sample_indices(30, 8, 4, "test", dense=True)[0, :, 0]  # window shrinks to fit
    assert (short[1:] - short[:-1]).eq(3).all() and short[-1] + 3 <= 29


# --------------------------------------------------------------------------- transforms

def random_frames(count: int, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, height, width), dtype=torch.uint8, generator=g)


def test_train_transform_applies_one_crop_and_flip_to_every_frame():
    frame = random_frames(1)
    clip = frame.expand(6, -1, -1, -1).contiguous()
    transform = build_transform(train=True, size=CROP, flip=True)
    outputs = []
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(clip)
        assert out.shape == (1, 6, 3, CROP, CROP) and out.dtype == torch.uint8
        assert all(torch.equal(out[0, 0], out[0, f]) for f in range(1, 6))
        outputs.append(out)
    assert len({o.sum().item() for o in outputs}) > 3  # the draws do differ between clips


def test_flip_is_switchable():
    clip = random_frames(4)
    crop_only = build_transform(train=True, size=CROP, flip=False)
    with_flip = build_transform(train=True, size=CROP, flip=True)
    mirrored = 0
    for seed in range(20):
        torch.manual_seed(seed)
        plain = crop_only(clip)
        torch.manual_seed(seed)
        reference = MultiScaleCornerCrop(CROP)(clip)  # the crop alone, same draw
        torch.manual_seed(seed)
        maybe = with_flip(clip)
        assert torch.equal(plain[0], reference)  # flip off: never mirrored
        if torch.equal(maybe, plain.flip(-1)):
            mirrored += 1
        else:
            assert torch.equal(maybe, plain)
    assert 3 <= mirrored <= 17


def test_normalising_on_the_device_equals_the_workers_float_path_bit_for_bit():
    """The workers hand uint8 over; normalise_clips (run by to_device where the model runs) gives
    exactly what the workers' v2 ToDtype + Normalize gave per clip, for a whole batch at once."""
    from torchvision.transforms import v2

    from mienet.engine.performance import SpeedConfig, to_device

    batch = random_frames(2 * 3 * 4, CROP, CROP).view(2, 1, 3, 4, 3, CROP, CROP)
    worker_path = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    per_clip = torch.stack([worker_path(clip.reshape(-1, 3, CROP, CROP)).view(clip.shape) for clip in batch])
    on_device = to_device(batch, "cpu", SpeedConfig())
    assert on_device.dtype == torch.float32 and torch.equal(on_device, per_clip)
    assert to_device(on_device, "cpu", SpeedConfig()) is on_device  # float input: already normalised
    with pytest.raises(ValueError):
        normalise_clips(batch.to(torch.int16))


@pytest.mark.parametrize("flip", [True, False])
def test_draw_then_apply_is_the_v2_pipeline_bit_for_bit(flip):
    """ClipTransform draws from the frame size alone and applies later (where a device decoded
    the bytes): the same draws, in the same order, and the same pixels as the v2 Compose it
    replaced, so the default run's numbers do not move."""
    from torchvision.transforms import v2

    clip = random_frames(5, 60, 90)
    reference = v2.Compose([MultiScaleCornerCrop(CROP)] + ([v2.RandomHorizontalFlip(p=0.5)] if flip else []))
    transform = build_transform(train=True, size=CROP, flip=flip)
    flips = 0
    for seed in range(40):
        torch.manual_seed(seed)
        want = reference(clip)
        after_reference = torch.rand(1)
        torch.manual_seed(seed)
        params = transform.draw(60, 90)
        assert torch.equal(torch.rand(1), after_reference)  # as many draws as v2 took
        assert torch.equal(transform.apply(clip, params)[0], want)
        flips += params["flip"]
    assert (10 <= flips <= 30) if flip else flips == 0
    evaluation = build_transform(train=False, size=CROP, scale_size=40, num_crops=3)
    assert evaluation.draw(60, 90) == {}
    assert torch.equal(evaluation(clip), evaluation.crops(v2.Resize(40, antialias=True)(clip)))


def test_multiscale_crop_uses_the_recipe_scales_and_corners():
    crop = MultiScaleCornerCrop(CROP)
    seen_sizes, seen_places = set(), set()
    torch.manual_seed(0)
    for _ in range(300):
        p = crop.make_params([torch.zeros(2, 3, 100, 140, dtype=torch.uint8)])
        h, w = p["height"], p["width"]
        sides = [100, 87, 75, 66]
        assert h in sides and w in sides and abs(sides.index(h) - sides.index(w)) <= 1
        assert (p["top"], p["left"]) in {(0, 0), (0, 140 - w), (100 - h, 0), (100 - h, 140 - w),
                                         ((100 - h) // 2, (140 - w) // 2)}
        seen_sizes.add((h, w))
        seen_places.add((p["top"] == 0, p["left"] == 0))
    assert len(seen_sizes) == 10 and len(seen_places) == 4


def test_eval_transform_resizes_the_short_side_and_cuts_one_or_three_crops():
    wide = random_frames(5, 48, 64)
    one = build_transform(train=False, size=CROP, scale_size=40)(wide)
    three = build_transform(train=False, size=CROP, scale_size=40, num_crops=3)(wide)
    assert one.shape == (1, 5, 3, CROP, CROP) and three.shape == (3, 5, 3, CROP, CROP)
    assert torch.equal(three[1], one[0])  # the middle crop is the centre crop
    resized = torch.nn.functional.interpolate(wide.float(), size=(40, 53), mode="bilinear",
                                              antialias=True, align_corners=False)
    left, right = resized[..., 4:36, :CROP], resized[..., 4:36, -CROP:]
    assert (three[0].float() - left).abs().max() < 1.5  # uint8 rounding only
    assert (three[2].float() - right).abs().max() < 1.5
    tall = build_transform(train=False, size=CROP, num_crops=3)(random_frames(2, 70, 40))
    assert tall.shape == (3, 2, 3, CROP, CROP) and not torch.equal(tall[0], tall[2])
    grey = torch.tensor([round(255 * m) for m in IMAGENET_MEAN], dtype=torch.uint8).view(1, 3, 1, 1)
    normalised = normalise_clips(build_transform(train=False, size=CROP)(grey.expand(2, 3, 40, 40).contiguous()))
    assert normalised.dtype == torch.float32 and normalised.abs().max() < 0.01
    with pytest.raises(ValueError):
        build_transform(train=False, size=CROP, num_crops=2)


# --------------------------------------------------------------------------- decoding

def test_decode_frames_returns_rgb_and_names_bad_files(tmp_path):
    red = np.zeros((10, 12, 3), np.uint8)
    red[..., 2] = 255  # OpenCV writes BGR
    cv2.imwrite(str(tmp_path / "red.png"), red)
    cv2.imwrite(str(tmp_path / "red.jpg"), red)
    png = decode_frames([tmp_path / "red.png"])
    assert png.shape == (1, 3, 10, 12) and png.dtype == torch.uint8
    assert png[0, 0].eq(255).all() and png[0, 1:].eq(0).all()
    jpg = decode_frames([tmp_path / "red.jpg"])
    assert jpg[0, 0].min() > 240 and jpg[0, 1:].max() < 15
    data = (tmp_path / "red.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image" * 10)
    cv2.imwrite(str(tmp_path / "small.png"), red[:5])
    for name, words in (("cut.jpg", "truncated"), ("junk.jpg", "not a readable image"),
                        ("absent.jpg", "no such file"), ("small.png", "differs")):
        with pytest.raises(MienetError, match=words) as err:
            decode_frames([tmp_path / "red.png", tmp_path / name])
        assert str(tmp_path / name) in str(err.value)


def test_compare_decoders_measures_every_decoder(dataset_root):
    paths = sorted((dataset_root / "frames").rglob("img_*.jpg"))[:8]
    result = compare_decoders(paths, repeats=1)
    assert set(result["decoders"]) >= {"opencv", "opencv-imread", "torchvision", "pil"}
    assert all(r["images_per_s"] > 0 for r in result["decoders"].values())
    assert result["decoders"][DECODER]["detects_truncation"]
    assert result["decoders"]["torchvision"]["max_abs_diff"] <= 2  # all libjpeg-turbo builds
    assert (result["images"], result["height"], result["width"]) == (8, SIZE, SIZE)


# --------------------------------------------------------------------------- dataset

def test_dataset_reads_the_frames_the_indices_name(dataset_root):
    ds = ClipDataset(all_list(dataset_root), dataset_root, num_segments=3, frames_per_segment=4, size=CROP)
    assert len(ds) == 6 and ds.num_classes == 3 and ds.labels == [c.label for c in ds.clips]
    clips, label, index = ds[4]
    assert clips.shape == (1, 3, 4, 3, CROP, CROP) and clips.dtype == torch.uint8
    clip = ds.clips[4]
    assert (label, index) == (clip.label, 4)
    idx = sample_indices(clip.frames, 3, 4, "val")[0]
    files = [dataset_root / clip.path / f"img_{i + 1:05d}.jpg" for i in idx.view(-1).tolist()]  # 1-based
    expected = build_transform(False, CROP)(decode_frames(files)).view(1, 3, 4, 3, CROP, CROP)
    assert torch.equal(clips, expected)


def test_eval_views_are_clips_times_crops(dataset_root):
    ds = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, num_clips=2, num_crops=3)
    clips, _, _ = ds[0]
    assert clips.shape == (6, 3, 4, 3, CROP, CROP) and ds.num_views == 6
    single = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, num_crops=3)[0][0]
    assert torch.equal(clips[:3], single)  # clip 0 (the centres) with its three crops comes first
    dense = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, dense=True, num_clips=2)[0][0]
    assert dense.shape == (2, 3, 4, 3, CROP, CROP)


def test_same_sample_seed_gives_the_same_clip_and_leaves_the_global_rng_alone(dataset_root):
    ds = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, train=True)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = ds[(2, 77)][0], ds[(2, 77)][0]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    others = [ds[(2, s)][0] for s in range(6)]
    assert any(not torch.equal(a, o) for o in others)
    assert torch.equal(ds[2][0], ds[(2, 2)][0])  # a plain index is its own seed


def epoch_batches(loader, epoch: int) -> list[tuple]:
    loader.sampler.set_epoch(epoch)
    return [tuple(b) for b in loader]


def same_batches(x: list[tuple], y: list[tuple]) -> bool:
    return len(x) == len(y) and all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) and a[3] == b[3]
        for a, b in zip(x, y))


def test_batches_do_not_depend_on_workers_and_differ_between_epochs(dataset_root):
    ds = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, train=True)
    serial = build_loader(ds, batch_size=4, shuffle=True, seed=9, workers=0)
    parallel = build_loader(ds, batch_size=4, shuffle=True, seed=9, workers=2)
    assert isinstance(parallel.sampler, ClipSampler) and parallel.persistent_workers
    torch.manual_seed(0)
    state = torch.get_rng_state()
    s0, s1 = epoch_batches(serial, 0), epoch_batches(serial, 1)
    assert torch.equal(torch.get_rng_state(), state)  # loading leaves the caller's RNG alone
    p0, p1 = epoch_batches(parallel, 0), epoch_batches(parallel, 1)
    assert [b[0].shape for b in s0] == [(4, 1, 3, 4, 3, CROP, CROP), (2, 1, 3, 4, 3, CROP, CROP)]
    assert same_batches(s0, p0) and same_batches(s1, p1)
    assert not same_batches(s0, s1)
    assert same_batches(epoch_batches(parallel, 0), s0)  # an epoch replayed (after a resume) is the same
    assert sorted(torch.cat([b[2] for b in s0]).tolist()) == list(range(6))


def test_sampler_shards_cover_every_index_and_resume_mid_epoch():
    for drop_last in (False, True):
        shards = [ClipSampler(7, shuffle=True, seed=1, rank=r, world_size=2, drop_last=drop_last)
                  for r in range(2)]
        for s in shards:
            s.set_epoch(3)
        items = [list(s) for s in shards]
        assert len(items[0]) == len(items[1]) == len(shards[0])
        indices = [i for part in items for i, _ in part]
        if drop_last:
            assert len(indices) == 6 and len(set(indices)) == 6
        else:
            assert len(indices) == 8 and set(indices) == set(range(7))
        seeds = {}
        for i, seed in (pair for part in items for pair in part):
            assert seeds.setdefault(i, seed) == seed  # a padded duplicate is the same sample
    whole = ClipSampler(7, shuffle=True, seed=1)
    whole.set_epoch(3)
    full = list(whole)
    assert sorted(i for i, _ in full) == list(range(7))
    whole.set_epoch(3, start=4)
    assert list(whole) == full[4:] and len(whole) == 3
    plain = ClipSampler(5, shuffle=False)
    assert [i for i, _ in plain] == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- bad input

def test_missing_frame_is_an_error_naming_file_and_clip(dataset_root, tmp_path):
    list_file, root = one_clip_copy(dataset_root, tmp_path)
    ds = ClipDataset(list_file, root, 3, size=CROP)
    clip = ds.clips[0]
    victim = ds.frame_path(clip, int(sample_indices(clip.frames, 3, 4, "val")[0, 1, 2]))
    victim.unlink()
    with pytest.raises(MienetError) as err:
        ds[0]
    message = str(err.value)
    assert str(victim) in message and "clip 0" in message and f"{list_file}:1" in message
    victim.write_bytes(b"\xff\xd8 broken")  # unreadable instead of missing
    with pytest.raises(MienetError, match="truncated"):
        ds[0]


def test_skip_missing_drops_and_counts_the_clip(dataset_root, tmp_path):
    list_file, root = one_clip_copy(dataset_root, tmp_path, lines=3)
    shutil.rmtree(root / "frames" / "clip 1")
    ds = ClipDataset(list_file, root, 3, size=CROP, skip_missing=True)
    assert ds[1] is None
    batches = list(build_loader(ds, batch_size=2, shuffle=False))
    assert [b[3] for b in batches] == [1, 0]
    assert torch.cat([b[2] for b in batches]).tolist() == [0, 2]
    clips, labels, indices, skipped = collate_clips([None])
    assert clips.numel() == 0 and labels.numel() == 0 and skipped == 1


def test_label_outside_the_class_list_names_every_line(dataset_root, tmp_path):
    lines = all_list(dataset_root).read_text().splitlines()
    relabel = [line.rsplit(maxsplit=1)[0] for line in lines[2:4]]  # other clips: no repeats
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{lines[0]}\n{relabel[0]} 3\n{lines[1]}\n{relabel[1]} 7\n")
    with pytest.raises(MienetError) as err:
        ClipDataset(bad, dataset_root, 3, num_classes=3)
    assert f"{bad}:2" in str(err.value) and f"{bad}:4" in str(err.value) and f"{bad}:1" not in str(err.value)
    assert ClipDataset(bad, dataset_root, 3).num_classes == 8  # without a class count: max label + 1


def test_measure_loader_reports_clips_per_second(dataset_root):
    ds = ClipDataset(all_list(dataset_root), dataset_root, 3, size=CROP, train=True)
    result = measure_loader(ds, batch_size=2, workers=0, batches=4)
    assert result["clips_per_s"] > 0 and result["clips"] == 8
    assert (result["workers"], result["batch_size"], result["decoder"]) == (0, 2, DECODER)
