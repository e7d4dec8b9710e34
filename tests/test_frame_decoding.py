"""frames.lmdb's decoder (simplejpeg) gives Pillow's pixels, for the binariser's RGB frames and for the other JPEG
colour spaces a store may hold; a damaged frame is still one StoreError."""

import io

import numpy as np
import pytest
from PIL import Image

from slt_plugins.data.lmdb_store import FrameStore, LmdbWriter, StoreError, encode_jpeg, pack_clip


def jpeg(mode: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def pillow(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_store_decodes_the_same_pixels_as_pillow(tmp_path):
    rng = np.random.default_rng(0)
    rgb = [encode_jpeg(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)) for _ in range(3)]
    clips = {"rgb": rgb, "gray": [jpeg("L", 1), jpeg("L", 2)], "cmyk": [jpeg("CMYK", 3)],
             "mixed": [rgb[0], jpeg("L", 4), jpeg("CMYK", 5)]}
    with LmdbWriter(str(tmp_path / "frames.lmdb")) as writer:
        for key, frames in clips.items():
            writer.put(key, pack_clip(frames))
        writer.put("damaged", pack_clip([rgb[0], rgb[1][: len(rgb[1]) // 3]]))
    store = FrameStore(str(tmp_path / "frames.lmdb"))
    for key, frames in clips.items():
        np.testing.assert_array_equal(store.frames(key), np.stack([pillow(f) for f in frames]), err_msg=key)
    np.testing.assert_array_equal(store.frames("rgb", [2, 0]), np.stack([pillow(rgb[2]), pillow(rgb[0])]))
    with pytest.raises(StoreError, match=r"clip 'damaged', frame 2: not a readable JPEG"):
        store.frames("damaged")
