"""LMDB stores of a binarised dataset: ``frames.lmdb`` (JPEG frames per clip) and ``features/<name>.lmdb``.

Values are plain bytes with a header, never pickles, so opening a store from elsewhere cannot run code:

* a clip: ``b"SLTF"``, format version (u8), frame count (u32), each frame's byte length (u32 …), then the JPEG
  bytes of every frame, in order (little endian);
* a feature array: the ``.npy`` format, read with ``allow_pickle=False`` after its header is checked (a numeric dtype,
  a shape that fits the stored bytes);
* a clip's keypoints (``poses.lmdb``): such an array, float16 T×K×(D+1), the D coordinates of each point and its
  confidence last (see :mod:`slt_plugins.data.pose_files`).

Whatever a value holds, reading it raises StoreError (one line naming the store and the key), never another error.

Readers open the environment lazily and again after a fork, so a dataset holding a store is safe to hand to
several data-loader workers.
"""

import io
import json
import os
import struct
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import lmdb
import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from slt_plugins.data.video_io import clip_size_error, frame_size_error

CLIP_MAGIC = b"SLTF"
CLIP_VERSION = 1
_HEADER = struct.Struct("<4sBI")
MAP_SIZE = 1 << 40  # address space only: LMDB files grow with the data
MAX_KEY_BYTES = 511  # LMDB's default key size limit


class StoreError(ValueError):
    """A store or a value in it that cannot be read."""


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pack_clip(jpegs: List[bytes]) -> bytes:
    lengths = struct.pack(f"<{len(jpegs)}I", *(len(j) for j in jpegs))
    return _HEADER.pack(CLIP_MAGIC, CLIP_VERSION, len(jpegs)) + lengths + b"".join(jpegs)


def clip_header(value: bytes, key: str = "?") -> int:
    """The frame count of a packed clip, after checking that its header fits the value."""
    if len(value) < _HEADER.size:
        raise StoreError(f"clip {key!r}: value of {len(value)} bytes is too short for a header")
    magic, version, n = _HEADER.unpack_from(value)
    if magic != CLIP_MAGIC or version != CLIP_VERSION:
        raise StoreError(f"clip {key!r}: not a fairseq-slt clip (magic {magic!r}, version {version})")
    if _HEADER.size + 4 * n > len(value):
        raise StoreError(f"clip {key!r}: header declares {n} frames, more than its {len(value)} bytes can hold "
                         "(corrupt or truncated store; binarise the dataset again)")
    return n


def unpack_clip(value: bytes, key: str = "?") -> List[bytes]:
    n = clip_header(value, key)
    lengths = struct.unpack_from(f"<{n}I", value, _HEADER.size)
    offset = _HEADER.size + 4 * n
    if offset + sum(lengths) != len(value):
        raise StoreError(f"clip {key!r}: frame lengths do not add up to the value's size (truncated store?)")
    frames = []
    for length in lengths:
        frames.append(value[offset: offset + length])
        offset += length
    return frames


def pack_array(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def array_header(value: bytes, key: str = "?", size: Optional[int] = None):
    """(shape, dtype) of a packed array from its ``.npy`` header, checked before any data is read: a numeric dtype
    and a shape whose data is the ``size`` bytes the value has (default ``len(value)``), so an object array or an
    absurd declared shape is a StoreError, not an unpickling or a huge allocation."""
    buffer = io.BytesIO(value)
    try:
        version = np.lib.format.read_magic(buffer)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = read_header[version](buffer)
    except (ValueError, KeyError, SyntaxError, TypeError) as e:
        raise StoreError(f"array {key!r}: not a .npy array ({type(e).__name__}: {e})") from None
    if dtype.hasobject or dtype.kind not in "fiub":
        raise StoreError(f"array {key!r}: dtype {dtype} where features are numbers (float16); extract them again")
    data = (len(value) if size is None else size) - buffer.tell()
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != data:
        raise StoreError(f"array {key!r}: header declares shape {tuple(shape)} of {dtype}, which is not the "
                         f"{data:,} bytes stored (corrupt store?); extract the features again")
    return tuple(shape), dtype


def unpack_array(value: bytes, key: str = "?") -> np.ndarray:
    array_header(value, key)
    try:
        return np.load(io.BytesIO(value), allow_pickle=False)
    except ValueError as e:
        raise StoreError(f"array {key!r}: unreadable ({e})") from None


_ENVS: Dict[str, Tuple[Tuple[int, int], lmdb.Environment]] = {}  # real path → (data file's identity, environment)
_ENVS_PID = os.getpid()


def _readonly_env(path: str) -> lmdb.Environment:
    """One environment per store and process: lmdb refuses to open a store's files twice in a process (two splits'
    datasets over one ``frames.lmdb``), a forked worker must not use its parent's, and a store rebuilt in place
    (binarise renames a new one over the old) needs a new one."""
    global _ENVS_PID
    if _ENVS_PID != os.getpid():
        _ENVS.clear()
        _ENVS_PID = os.getpid()
    real = os.path.realpath(path)
    try:
        stat = os.stat(os.path.join(real, "data.mdb"))
    except FileNotFoundError:
        raise StoreError(f"{path}: no data.mdb; binarise the dataset first (slt-binarise --help)") from None
    identity = (stat.st_dev, stat.st_ino)
    cached = _ENVS.get(real)
    if cached is None or cached[0] != identity:
        if cached is not None:
            cached[1].close()
        try:
            env = lmdb.open(real, readonly=True, lock=False, readahead=False, meminit=False, max_readers=256)
        except lmdb.Error as e:
            raise StoreError(f"{path}: not an LMDB store ({type(e).__name__}: {e}); binarise the dataset "
                             "again") from None
        _ENVS[real] = identity, env
    return _ENVS[real][1]


class LmdbReader:
    """Read-only access to one LMDB store, safe across fork (each process opens its own environment)."""

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise StoreError(f"{path}: no such LMDB store; binarise the dataset first (slt-binarise --help)")
        self.path = path

    def _txn_env(self) -> lmdb.Environment:
        return _readonly_env(self.path)

    def get(self, key: str) -> bytes:
        encoded = key.encode("utf-8")
        if not 0 < len(encoded) <= MAX_KEY_BYTES:
            raise StoreError(f"{self.path}: no entry {key[:40]!r}{'…' if len(key) > 40 else ''}: a key has 1 to "
                             f"{MAX_KEY_BYTES} bytes, this one {len(encoded)}")
        try:
            with self._txn_env().begin(buffers=False) as txn:
                value = txn.get(encoded)
        except lmdb.Error as e:
            raise StoreError(f"{self.path}: cannot read {key!r} ({type(e).__name__}: {e}); binarise the dataset "
                             "again") from None
        if value is None:
            raise StoreError(f"{self.path}: no entry {key!r}")
        return value

    def __contains__(self, key: str) -> bool:
        with self._txn_env().begin() as txn:
            return txn.get(key.encode("utf-8")) is not None

    def keys(self) -> Iterator[str]:
        with self._txn_env().begin() as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                yield bytes(key).decode("utf-8")

    def close(self):
        """Closes the store's environment in this process, for every reader of it (they reopen on next use)."""
        cached = _ENVS.pop(os.path.realpath(self.path), None)
        if cached is not None and _ENVS_PID == os.getpid():
            cached[1].close()


# JPEG colour spaces that libjpeg decodes to RGB itself (CMYK goes through Pillow)
_LIBJPEG_TO_RGB = ("Gray", "YCbCr", "RGB")


class FrameStore(LmdbReader):
    """``frames.lmdb``: clip id → JPEG frames."""

    def jpegs(self, key: str) -> List[bytes]:
        return unpack_clip(self.get(key), key)

    def frames(self, key: str, indices: Optional[Iterable[int]] = None) -> np.ndarray:
        """The clip's frames as uint8 T×H×W×3; with ``indices``, only those frames are decoded.

        Decoding is most of the cost of reading a clip, so each frame goes straight into the result, decoded by
        libjpeg-turbo through simplejpeg (2.3× Pillow's time on 256×256 frames, the same pixels: both run
        libjpeg-turbo's exact DCT and fancy upsampling; bench/data_loading.py). Pillow reads the first header,
        decodes a CMYK frame and names the damage of a frame libjpeg refuses. The first frame's declared size is checked
        against the pixel limits (:mod:`slt_plugins.data.video_io`) before anything is decoded or allocated; a
        damaged frame or one of another size is a StoreError naming the clip."""
        jpegs = self.jpegs(key)
        positions = range(len(jpegs)) if indices is None else [int(i) for i in indices]
        try:
            chosen = [jpegs[i] for i in positions]
        except IndexError:
            raise StoreError(f"{self.path}: clip {key!r} has {len(jpegs)} frames, fewer than the manifest says "
                             "(binarise the dataset again)") from None
        if not chosen:
            raise StoreError(f"clip {key!r}: no frames to decode")
        out = None
        for i, data in enumerate(chosen):
            what = f"{self.path}: clip {key!r}, frame {positions[i] + 1}"
            try:
                if out is None:  # Pillow reads the first header: its own checks (decompression bombs) come first
                    image = Image.open(io.BytesIO(data), formats=("JPEG",))
                    error = frame_size_error(what, image.width, image.height) or clip_size_error(
                        f"{self.path}: clip {key!r}", len(chosen), image.height, image.width)
                    if error:
                        raise StoreError(error)
                    out = np.empty((len(chosen), image.height, image.width, 3), dtype=np.uint8)
                try:
                    height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
                except ValueError:  # not a JPEG to libjpeg: Pillow names the fault
                    height, width, colorspace = *Image.open(io.BytesIO(data), formats=("JPEG",)).size[::-1], "?"
                if (height, width) != out.shape[1:3]:
                    raise StoreError(f"{what}: {width}×{height} where the clip's first frame is "
                                     f"{out.shape[2]}×{out.shape[1]}; binarise the dataset again")
                try:
                    if colorspace not in _LIBJPEG_TO_RGB:
                        raise ValueError(colorspace)
                    simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out[i])
                except ValueError:  # CMYK, or damaged: Pillow decodes it or says how (a truncated file: OSError)
                    out[i] = Image.open(io.BytesIO(data), formats=("JPEG",)).convert("RGB")
            except StoreError:
                raise
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError) as e:
                reason = "no JPEG header" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
                raise StoreError(f"{what}: not a readable JPEG ({reason}); binarise the dataset again") from None
        return out

    def num_frames(self, key: str) -> int:
        return clip_header(self.get(key), key)


def array_shape(value: bytes, key: str = "?", size: Optional[int] = None) -> Tuple[int, ...]:
    """The shape of a packed array from its ``.npy`` header, without reading the data (``value`` may be the first
    bytes only, with ``size`` the whole value's length)."""
    return array_header(value, key, size)[0]


FEATURE_INDEX = "index.json"  # beside data.mdb: {"dim": C, "lengths": {id: T'}, …}, written by slt-extract-features


class FeatureStore(LmdbReader):
    """``features/<name>.lmdb``: clip id → float16 array T'×C, and an index of the lengths (``index.json``)."""

    ndim = 2
    what = "features are T'×C"

    def array(self, key: str) -> np.ndarray:
        return unpack_array(self.get(key), f"{self.path}:{key}")

    def index(self) -> dict:
        """What slt-extract-features recorded (lengths, dim, the checkpoint); {} for a store without an index."""
        path = os.path.join(self.path, FEATURE_INDEX)
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                index = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{path}: not the index slt-extract-features writes ({e}); extract again") from None
        if not isinstance(index, dict):
            raise StoreError(f"{path}: not the index slt-extract-features writes (a {type(index).__name__})")
        return index

    def lengths(self, keys: Sequence[str]) -> List[int]:
        """T' of each key: from the index when it has them all, else from the arrays' headers."""
        known = self.index().get("lengths", {})
        if all(k in known for k in keys):
            return [int(known[k]) for k in keys]
        with self._txn_env().begin(buffers=True) as txn:
            out = []
            for key in keys:
                value = txn.get(key.encode("utf-8"))
                if value is None:
                    raise StoreError(f"{self.path}: no entry {key!r}; extract features for every split "
                                     "(slt-extract-features --help)")
                shape = array_shape(bytes(value[:4096]), f"{self.path}:{key}", len(value))
                if len(shape) != self.ndim:
                    raise StoreError(f"{self.path}: array {key!r} has shape {shape}; {self.what}")
                out.append(shape[0])
            return out


POSE_STORE = "poses.lmdb"


class PoseStore(FeatureStore):
    """``poses.lmdb``: clip id → float16 T×K×(D+1) keypoints (confidence last); its ``index.json`` names the layout
    (:mod:`slt_plugins.data.pose_layouts`), the points, D and each clip's T, as slt-binarise wrote them."""

    ndim = 3
    what = "keypoints are T×K×(D+1)"

    def poses(self, key: str) -> np.ndarray:
        array = self.array(key)
        index = self.index()
        expected = (len(index.get("points", ())) or array.shape[1], int(index.get("dims", array.shape[-1] - 1)) + 1)
        if array.ndim != 3 or array.shape[0] < 1 or array.shape[1:] != expected:
            raise StoreError(f"{self.path}: keypoints {key!r} have shape {array.shape}, expected T×{expected[0]}×"
                             f"{expected[1]} by the store's index.json; binarise the dataset again")
        return array

    def layout(self) -> dict:
        """The index's layout name, points and dims; a store without them is an error naming it."""
        index = self.index()
        if not isinstance(index.get("layout"), str) or not isinstance(index.get("dims"), int):
            raise StoreError(f"{self.path}: its index.json names no keypoint layout and dims; binarise the dataset "
                             "again with slt-binarise")
        return {"layout": index["layout"], "dims": index["dims"], "points": index.get("points", [])}


class LmdbWriter:
    """Writes key → bytes in batched transactions; use as a context manager.

    Values are buffered and each flush is one short write transaction, so several processes (the ranks of
    slt-extract-features) can write into one store: LMDB serialises their transactions. Leaving the context with an
    exception drops what was not flushed yet; everything flushed before stays."""

    def __init__(self, path: str, commit_every: int = 64):
        os.makedirs(path, exist_ok=True)
        self.env = lmdb.open(path, map_size=MAP_SIZE, subdir=True, meminit=False, map_async=True)
        self.commit_every = commit_every
        self._pending: List[Tuple[bytes, bytes]] = []

    def keys(self) -> List[str]:
        """The keys already in the store (committed), e.g. to resume an interrupted run."""
        with self.env.begin() as txn:
            return [bytes(k).decode("utf-8") for k in txn.cursor().iternext(keys=True, values=False)]

    def put(self, key: str, value: bytes) -> None:
        self._pending.append((key.encode("utf-8"), value))
        if len(self._pending) >= self.commit_every:
            self.flush()

    def put_clip(self, key: str, frames: Iterable[np.ndarray], quality: int = 90) -> int:
        jpegs = [encode_jpeg(f, quality) for f in frames]
        self.put(key, pack_clip(jpegs))
        return len(jpegs)

    def put_array(self, key: str, array: np.ndarray) -> None:
        self.put(key, pack_array(array))

    def flush(self) -> None:
        if self._pending:
            with self.env.begin(write=True) as txn:
                for key, value in self._pending:
                    txn.put(key, value)
            self._pending = []

    def close(self) -> None:
        if self.env is not None:
            self.flush()
            self.env.sync(True)
            self.env.close()
            self.env = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._pending = []
        self.close()
