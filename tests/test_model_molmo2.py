"""Molmo2 images and videos: the torch-only processors, the prompt layout, packing and masks on a tiny Molmo2."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mr2bench.model.backbone import load_backbone  # noqa: E402
from mr2bench.model.molmo2_media import image_string, load_processors, video_string  # noqa: E402
from mr2bench.model.packing import isolated_mask  # noqa: E402
from mr2bench.model.reward_model import MediaPayload, RewardModel  # noqa: E402
from mr2bench.model.tiny import MOLMO2_TINY_PROCESSOR, save_tiny_model  # noqa: E402

from model_helpers import RESPONSES, sharpen  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("molmo2"), "molmo2")


@pytest.fixture(scope="module")
def rm(folder):
    model, tok, processors = load_backbone(str(folder), dtype=torch.float32, device=torch.device("cpu"))
    return sharpen(RewardModel(model, tok, processors).eval())


def _pixels(seed=0, size=(80, 60)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _image(seed=0, size=(80, 60)):
    from PIL import Image

    return MediaPayload("image", Image.fromarray(_pixels(seed, size)))


def _video(seed=0, frames=5):
    return MediaPayload("video", np.random.default_rng(seed).integers(0, 256, (frames, 48, 64, 3), dtype=np.uint8))


MEDIA = {"image": [_image()], "video": [_video()], "both": [_video(2), _image(1, (120, 90))]}


def _patchify(arr: np.ndarray, patch: int) -> np.ndarray:
    """[H, W, 3] -> [n_patches, patch*patch*3], rows of patches, pixels (y, x, channel) inside a patch."""
    h, w, c = arr.shape
    return arr.reshape(h // patch, patch, w // patch, patch, c).transpose(0, 2, 1, 3, 4).reshape(-1, patch * patch * c)


def test_image_processor_matches_an_independent_computation_where_resize_is_identity(folder):
    """84x84 with 1-patch margins: one crop whose canvas is the image, and a low-res view that is the image too."""
    from PIL import Image

    ip = load_processors(str(folder)).image
    assert ip.max_crops == 4 and list(ip.overlap_margins) == [1, 1] and ip.size.height == 84
    arr = _pixels(3, (84, 84))
    out = ip(images=[Image.fromarray(arr)], return_tensors="pt")
    expected = _patchify((arr.astype(np.float32) / 255.0 - 0.5) / 0.5, 14)
    assert tuple(out["pixel_values"].shape) == (2, 36, 588) and out["image_num_crops"].tolist() == [2]
    np.testing.assert_allclose(out["pixel_values"][0].numpy(), expected, atol=1e-6)  # low-res view
    np.testing.assert_allclose(out["pixel_values"][1].numpy(), expected, atol=1e-6)  # the one high-res crop
    # 2x2 pooling over a 6x6 patch grid: 9 windows per view, high-res indices after the 36 low-res patches
    pool = out["image_token_pooling"]
    assert tuple(pool.shape) == (18, 4) and pool[0].tolist() == [0, 1, 6, 7] and pool[9].tolist() == [36, 37, 42, 43]


@pytest.mark.parametrize("size", [(80, 60), (200, 50), (30, 170), (84, 84)])
def test_image_grids_and_tokens_agree_with_the_processors_own_count(rm, size):
    ip = rm.encoder.image_processor
    out = ip(images=[_image(0, size).value], return_tensors="pt")
    grid, crops = ip.get_image_grid_and_crops(size[1], size[0])
    assert out["image_grids"][0].tolist() == grid and out["image_num_crops"].tolist() == [crops]
    assert out["image_token_pooling"].shape[0] == grid[0] * grid[1] + grid[2] * grid[3]
    text = image_string(grid)
    assert text.count("<im_patch>") == grid[0] * grid[1] + grid[2] * grid[3]
    assert text.count("<im_col>") == grid[0] + grid[2]  # Molmo2Processor's defaults: column tokens in both views
    assert text.startswith("<low_res_im_start>") and text.count("<im_end>") == 2


def test_prompt_layout_and_token_types(rm):
    tok = rm.tokenizer
    item = rm.build_item("Describe it.", RESPONSES[:2], MEDIA["both"])
    text = tok.decode(item.prefix_ids)
    # BOS (here EOS) first, every image before every video (the release's template), then the user turn
    assert text.startswith("<|im_end|><low_res_im_start>")
    two = tok.decode(rm.build_item("Two?", RESPONSES[:1], [_image(1), _image(2)]).prefix_ids)
    assert two.startswith("<|im_end|>Image 1<low_res_im_start>") and "<im_end>Image 2<low_res_im_start>" in two
    assert text.index("<frame_start>") > text.rindex("<im_start>")
    assert text.endswith("<|im_start|>user\nDescribe it.<|im_end|>\n<|im_start|>assistant\n")
    assert "0.0 <frame_start>" in text and " 0.5 <frame_start>" in text  # timestamps at the processor's max_fps
    vision_ids = set(tok.convert_tokens_to_ids(["<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>",
                                                "<frame_start>", "<im_end>", "<frame_end>", "<im_low>"]))
    assert item.prefix_types == [1 if i in vision_ids else 0 for i in item.prefix_ids]
    grid = item.media.tensors["image_grids"]
    patch_id = tok.convert_tokens_to_ids("<im_patch>")
    assert item.prefix_ids.count(patch_id) == int((grid[:, 0] * grid[:, 1] + grid[:, 2] * grid[:, 3]).sum())


@pytest.mark.parametrize("kind", ["image", "video", "both"])
def test_isolated_pass_equals_separate_passes(rm, kind):
    media = MEDIA[kind]
    one = rm.score_items([rm.build_item("Describe it.", RESPONSES, media)], "isolated")[0]
    separate = [rm.score_items([rm.build_item("Describe it.", [r], media)], "causal")[0][0] for r in RESPONSES]
    np.testing.assert_allclose(one, separate, rtol=1e-5, atol=1e-5)
    assert max(separate) - min(separate) > 1e-2


def test_isolated_mask_keeps_the_bidirectional_image_block(rm, monkeypatch):
    """Molmo2's image tokens see each other both ways; a plain causal isolated mask would change the scores."""
    item = rm.build_item("Describe it.", RESPONSES, MEDIA["image"])
    batch = rm.pack([item], "isolated")
    blocks = torch.where(batch.mm_token_type_ids == 1, 0, -1)
    mask = isolated_mask(batch.segment_ids, blocks)[0, 0]
    img = [i for i, t in enumerate(item.prefix_types) if t == 1]
    first, last = img[0], img[-1]
    assert mask[first, last] and mask[last, first]          # forward and backward inside the image
    assert not mask[first, last + 1] and mask[last + 1, first]  # text after the image stays causal
    separate = rm.score_items([rm.build_item("Describe it.", [RESPONSES[1]], MEDIA["image"])], "causal")[0][0]
    monkeypatch.setattr("mr2bench.model.reward_model.isolated_mask", lambda segs, blocks=None: isolated_mask(segs))
    plain = rm.score_items([item], "isolated")[0]
    assert abs(plain[1] - separate) > 1e-4


def test_causal_scores_do_not_see_later_responses(rm):
    a = rm.score_items([rm.build_item("Describe it.", RESPONSES, MEDIA["image"])], "causal")[0]
    changed = RESPONSES[:2] + ["something completely different here", RESPONSES[3]]
    b = rm.score_items([rm.build_item("Describe it.", changed, MEDIA["image"])], "causal")[0]
    np.testing.assert_allclose(a[:2], b[:2], rtol=1e-5, atol=1e-5)
    assert abs(a[2] - b[2]) > 1e-4
    iso = rm.score_items([rm.build_item("Describe it.", RESPONSES, MEDIA["image"])], "isolated")[0]
    # causal = the release's joint layout: response 1 is read before the separator, its single pass at the end
    assert abs(a[0] - iso[0]) > 1e-5 and abs(a[1] - iso[1]) > 1e-5


@pytest.mark.parametrize("mode", ["causal", "isolated"])
def test_batched_equals_unbatched_across_modalities(rm, mode):
    items = [rm.build_item("Describe it.", RESPONSES, MEDIA["image"]),
             rm.build_item("Short one?", RESPONSES[:2], []),
             rm.build_item("And the clip?", RESPONSES[1:], [_video(3, 4)]),
             rm.build_item("Both?", RESPONSES[:3], MEDIA["both"])]
    together = rm.score_items(items, mode)
    alone = [rm.score_items([it], mode)[0] for it in items]
    assert [len(s) for s in together] == [4, 2, 3, 3]
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t, a, rtol=1e-5, atol=1e-5)


def test_video_in_the_image_slots_equals_the_models_video_path(rm):
    """get_video_features = get_image_features with grids [T*rows, cols, 0, 0]: same hidden states."""
    item = rm.build_item("Clip?", RESPONSES[:1], MEDIA["video"])
    ids = torch.tensor([item.prefix_ids])
    types = torch.tensor([item.prefix_types])
    t = item.media.tensors
    n_frames = t["pixel_values"].shape[0]
    rows_cols = t["image_grids"][0, :2].tolist()
    video_grids = torch.tensor([[n_frames, rows_cols[0] // n_frames, rows_cols[1]]])
    with torch.no_grad():
        ours = rm.backbone(input_ids=ids, mm_token_type_ids=types, use_cache=False, pixel_values=t["pixel_values"],
                           image_token_pooling=t["image_token_pooling"], image_grids=t["image_grids"])
        native = rm.backbone(input_ids=ids, mm_token_type_ids=types, use_cache=False,
                             pixel_values_videos=t["pixel_values"], video_token_pooling=t["image_token_pooling"],
                             video_grids=video_grids)
    torch.testing.assert_close(ours.last_hidden_state, native.last_hidden_state)
    assert video_string([n_frames, 1, 1], [0.0] * n_frames).count("<frame_start>") == n_frames


def test_budget_reduces_crops_then_frames_and_reports_it(rm):
    big = _image(4, (300, 200))
    full = rm.build_item("Describe it.", RESPONSES, [big])
    saved, rm.max_vision_tokens = rm.max_vision_tokens, int(full.notes["vision_tokens"]) - 1
    try:
        small = rm.build_item("Describe it.", RESPONSES, [big])
        video = rm.build_item("Describe it.", RESPONSES, [_video(1, 16)])
    finally:
        rm.max_vision_tokens = saved
    assert full.notes["image_crops"] == 1 + MOLMO2_TINY_PROCESSOR["max_crops"]
    assert small.notes["image_downscaled"] == 1.0 and small.notes["image_crops"] < full.notes["image_crops"]
    assert small.notes["vision_tokens"] < full.notes["vision_tokens"]
    assert video.notes["frames_used"] < 16 and video.notes["frames_dropped"] > 0
    assert video.media.tensors["pixel_values"].shape[0] == video.notes["frames_used"]
    rm.score_items([small, video])  # token counts match the features


def test_checkpoint_roundtrip_keeps_processors_and_scores(rm, tmp_path):
    from mr2bench.model.checkpoint import LoadOptions, load_reward_model, save_reward_model

    item = rm.build_item("Describe it.", RESPONSES, MEDIA["both"])
    before = rm.score_items([item], "isolated")[0]
    out = save_reward_model(rm, tmp_path / "ckpt", base_model="tiny", merge=True)
    assert (out / "preprocessor_config.json").is_file() and (out / "video_preprocessor_config.json").is_file()
    back = load_reward_model(str(out), LoadOptions(device="cpu"))
    assert back.encoder.image_processor.max_crops == 4 and list(back.encoder.video_processor.pooling_size) == [3, 3]
    after = back.score_items([back.build_item("Describe it.", RESPONSES, MEDIA["both"])], "isolated")[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


# -- the checkpoint's own processor files and the release's video sampling (issue 17, item 4) --------------
# processor_config.json of the release's base (allenai/Molmo2-4B, as real-artifacts.md "Checkpoint config.json"
# lists its keys; values of the published file): frame tokens off, no column tokens in the low-res view.
RELEASE_PROCESSOR_CONFIG = {"auto_map": {"AutoProcessor": "processing_molmo2.Molmo2Processor"},
                            "image_use_col_tokens": True, "processor_class": "Molmo2Processor",
                            "use_frame_special_tokens": False, "use_single_crop_col_tokens": False,
                            "use_single_crop_start_token": True, "video_use_col_tokens": False}


def _release_like(folder, tmp_path, processor_config=RELEASE_PROCESSOR_CONFIG, frame_tokens_in_config=False):
    import json
    import shutil

    out = tmp_path / "ckpt"
    shutil.copytree(folder, out)
    if processor_config is not None:
        (out / "processor_config.json").write_text(json.dumps(processor_config))
    cfg = json.loads((out / "config.json").read_text())
    cfg["use_frame_special_tokens"] = frame_tokens_in_config  # real-artifacts.md: top-level flag, false
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def _load_rm(path):
    model, tok, processors = load_backbone(str(path), dtype=torch.float32, device=torch.device("cpu"))
    return RewardModel(model, tok, processors).eval()


def test_processor_flags_come_from_the_checkpoints_files(folder, tmp_path):
    rm_rel = _load_rm(_release_like(folder, tmp_path))
    assert rm_rel.encoder.flags.use_frame_special_tokens is False
    assert rm_rel.encoder.flags.use_single_crop_col_tokens is False
    item = rm_rel.build_item("Clip?", RESPONSES[:1], [_video(0, 3)])
    text = rm_rel.tokenizer.decode(item.prefix_ids)
    assert "<frame_start>" not in text and text.count("<im_start>") == 3 and text.count("<im_end>") == 3
    # the image: no <im_col> in the low-res view (use_single_crop_col_tokens false), columns in the crops
    ip = rm_rel.encoder.image_processor
    grid, _ = ip.get_image_grid_and_crops(60, 80)
    img = rm_rel.tokenizer.decode(rm_rel.build_item("Img?", RESPONSES[:1], [_image()]).prefix_ids)
    low = img[img.index("<low_res_im_start>"):img.index("<im_end>")]
    assert "<im_col>" not in low and low.count("<im_patch>") == grid[0] * grid[1]
    assert img.count("<im_col>") == grid[2]
    # the scores follow: the same weights read with the defaults' tokens give other scores
    default = sharpen(_load_rm(folder))
    sharpen(rm_rel)
    a = rm_rel.score_items([rm_rel.build_item("Clip?", RESPONSES, [_video(0, 3)])])[0]
    b = default.score_items([default.build_item("Clip?", RESPONSES, [_video(0, 3)])])[0]
    assert max(abs(x - y) for x, y in zip(a, b)) > 1e-4


def test_config_json_flag_applies_without_a_processor_config_and_saving_keeps_the_flags(folder, tmp_path):
    from mr2bench.model.molmo2_media import load_processors

    only_config = _release_like(folder, tmp_path, processor_config=None)
    assert load_processors(str(only_config)).flags.use_frame_special_tokens is False
    assert load_processors(str(folder)).flags.use_frame_special_tokens is True  # Molmo2Processor's default
    saved = tmp_path / "saved"
    load_processors(str(_release_like(folder, tmp_path / "b"))).save_pretrained(str(saved))
    back = load_processors(str(saved)).flags
    assert back.use_frame_special_tokens is False and back.use_single_crop_col_tokens is False


def test_a_bad_flag_is_a_clear_error(folder, tmp_path):
    from mr2bench.model.molmo2_media import load_processors

    bad = _release_like(folder, tmp_path, processor_config={"use_frame_special_tokens": "no"})
    with pytest.raises(ValueError, match="use_frame_special_tokens must be true, false or null"):
        load_processors(str(bad))


def _all_frames(path):
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _reference_sampling(n_frames: int, fps: float, max_frames=384, max_fps=2.0):
    """molmo_utils 'uniform_last_frame' written from real-artifacts.md (uniform with the last frame, at most
    2 fps, at most 384 frames): duration = n/fps; the frame on screen at time t is floor(t * fps)."""
    duration = n_frames / fps
    if (max_frames - 1) / max_fps >= duration:
        times = [k / max_fps for k in range(int(np.ceil(duration * max_fps)))] + [duration]
    else:
        times = [duration * k / (max_frames - 1) for k in range(max_frames)]
    return [min(n_frames - 1, int(np.floor(t * fps + 1e-9))) for t in times], times


@pytest.mark.parametrize("n_frames,fps", [(40, 8), (7, 1), (30, 24)])
def test_video_files_are_sampled_as_the_release_samples_them(tmp_path, n_frames, fps):
    from mr2bench.media import write_test_video
    from mr2bench.model.molmo2_media import read_video_file

    path = write_test_video(tmp_path / "clip.mp4", frames=n_frames, size=(32, 24), fps=fps)
    clip = read_video_file(path, 384, 2.0)
    idx, times = _reference_sampling(n_frames, fps)
    np.testing.assert_allclose(clip.timestamps, times, atol=1e-6)
    np.testing.assert_array_equal(clip.frames, _all_frames(path)[idx])
    assert clip.timestamps[-1] == pytest.approx(n_frames / fps)  # the last instant is always kept


def test_long_video_files_take_384_frames_spread_evenly(tmp_path):
    from mr2bench.media import write_test_video
    from mr2bench.model.molmo2_media import read_video_file

    path = write_test_video(tmp_path / "long.mp4", frames=400, size=(16, 16), fps=1)  # 400 s > 383 / 2 fps
    clip = read_video_file(path, 384, 2.0)
    idx, times = _reference_sampling(400, 1)
    assert clip.frames.shape[0] == 384
    np.testing.assert_allclose(clip.timestamps, times, atol=1e-6)
    np.testing.assert_array_equal(clip.frames, _all_frames(path)[idx])


def test_video_file_timestamps_reach_the_prompt(rm, tmp_path):
    from mr2bench.media import write_test_video
    from mr2bench.model.molmo2_media import load_release_video
    from mr2bench.schema import Media

    write_test_video(tmp_path / "clip.mp4", frames=12, size=(32, 24), fps=4)  # 3 s: 0.0 0.5 ... 3.0
    clip = load_release_video(Media("video", path="clip.mp4"), tmp_path)
    item = rm.build_item("Clip?", RESPONSES[:2], [MediaPayload("video", clip)])
    text = rm.tokenizer.decode(item.prefix_ids)
    assert [f"{t:.1f}" for t in clip.timestamps] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
    assert text.count("<frame_start>") == 7 and " 3.0 <frame_start>" in text and " 2.5 <frame_start>" in text
    rm.score_items([item])


def _frame_folder(path, names):
    from PIL import Image

    path.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), i * 5 % 256, dtype=np.uint8)).save(path / name)
    return path


def test_frame_folders_take_16_frames_with_both_ends_at_4_second_steps(tmp_path):
    from mr2bench.model.molmo2_media import read_frame_folder

    # MM-RLHF-RewardBench keeps videos as frame folders (real-artifacts.md); 40 frames -> 16
    folder = _frame_folder(tmp_path / "v", [f"frame_{i:03d}.jpg" for i in range(40)])
    clip = read_frame_folder(folder)
    expected = [round(j * 39 / 15) for j in range(16)]
    assert clip.frames.shape[0] == 16 and expected[0] == 0 and expected[-1] == 39
    assert list(clip.timestamps) == [k * 4.0 for k in expected]
    assert list(read_frame_folder(folder, interval=2.0).timestamps) == [k * 2.0 for k in expected]  # `fps` field
    short = read_frame_folder(_frame_folder(tmp_path / "s", ["a.png", "b.png", "c.png"]))
    assert list(short.timestamps) == [0.0, 4.0, 8.0]


def test_frame_folder_order_is_the_releases_jpeg_then_jpg_then_png(tmp_path):
    from mr2bench.model.molmo2_media import folder_frames

    folder = _frame_folder(tmp_path / "v", ["0.png", "1.png", "z.jpg", "a.jpeg", "x.bmp"])
    assert [p.name for p in folder_frames(folder)] == ["a.jpeg", "z.jpg", "0.png", "1.png"]


def test_budget_keeps_the_timestamps_of_the_frames_it_keeps(rm):
    from mr2bench.model.molmo2_media import VideoClip

    frames = np.random.default_rng(0).integers(0, 256, (16, 24, 32, 3), dtype=np.uint8)
    clip = VideoClip(frames, tuple(4.0 * k for k in range(16)))
    enc = rm.encoder.encode_video(clip, max_tokens=60)
    kept = int(enc.notes["frames_used"])
    assert 1 <= kept < 16 and enc.notes["frames_dropped"] == 16 - kept and enc.notes["vision_tokens"] <= 60
    more = rm.encoder.encode_video(clip, max_tokens=len(enc.placeholder_ids) + 200)
    assert more.notes["frames_used"] > kept  # the most frames that fit, not a halving
    text = rm.tokenizer.decode(enc.placeholder_ids)
    stamps = [4.0 * i for i in np.linspace(0, 15, kept, dtype=int)]
    assert text.startswith(f"{stamps[0]:.1f} ") and f" {stamps[-1]:.1f} " in text


def test_the_scoring_adapter_reads_videos_as_the_release_and_refuses_a_fifo_frame(rm, tmp_path):
    import os

    from mr2bench.adapters import AdapterOptions
    from mr2bench.media import write_test_video
    from mr2bench.model.adapter import MR2Adapter
    from mr2bench.model.checkpoint import save_reward_model
    from mr2bench.schema import DataError, Media, ScoringRequest

    ckpt = save_reward_model(rm, tmp_path / "ckpt", base_model="tiny", merge=True)
    adapter = MR2Adapter(str(ckpt), AdapterOptions(device="cpu", dtype="float32"))
    write_test_video(tmp_path / "clip.mp4", frames=12, size=(32, 24), fps=4)  # 3 s: 0.0 0.5 ... 3.0
    req = ScoringRequest(prompt="Clip?", responses=tuple(RESPONSES[:2]), media=(Media("video", path="clip.mp4"),),
                         item_id="x", benchmark="mr2bench-video", media_root=str(tmp_path))
    (payload,) = adapter._payloads(req)
    assert [f"{t:.1f}" for t in payload.value.timestamps] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
    frames = _frame_folder(tmp_path / "frames", ["0001.jpg", "0002.jpg"])
    os.mkfifo(frames / "0003.jpg")   # would block a reader forever: refused from its mode, never opened
    bad = ScoringRequest(prompt="Clip?", responses=tuple(RESPONSES[:2]), media=(Media("video", path="frames"),),
                         item_id="y", benchmark="mr2bench-video", media_root=str(tmp_path))
    with pytest.raises(DataError, match="FIFO"):
        adapter._payloads(bad)
