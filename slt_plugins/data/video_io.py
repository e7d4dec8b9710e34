"""Reading a clip from where datasets and users keep it: a folder of frame images or a video file.

Video files are decoded with PyAV (FFmpeg), so any container and codec FFmpeg knows works. Frames come back as
uint8 RGB, T×H×W×3, optionally resized so that the shorter side has a given length.

Limits (checked on the sizes the files declare, before anything is decoded, so a small file that claims a huge
picture costs nothing): a frame may have at most ``max_frame_pixels()`` pixels (default 4096×4096 = 16,777,216;
environment ``SLT_MAX_FRAME_PIXELS``), and a clip as held in memory (frames × height × width after resizing) at most
``max_clip_pixels()`` (default 2^30 = 1,073,741,824, 3 GiB of RGB; ``SLT_MAX_CLIP_PIXELS``). All frames of a clip
must have one size (after resizing). Both limits hold in slt-binarise, slt-translate and the datasets
(:class:`slt_plugins.data.lmdb_store.FrameStore`); a clip over them is that clip's one-line error.
"""

import os
import re
from typing import Iterator, List, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_FRAME_PIXELS = 4096 * 4096
DEFAULT_MAX_CLIP_PIXELS = 1 << 30

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")


class ClipReadError(ValueError):
    """A clip that cannot be read; the message names the path and the reason."""


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ClipReadError(f"{name}={value!r}: give a number of pixels") from None


def max_frame_pixels() -> int:
    """Pixels a frame may declare (width × height): ``SLT_MAX_FRAME_PIXELS``, default 4096×4096."""
    return _limit("SLT_MAX_FRAME_PIXELS", DEFAULT_MAX_FRAME_PIXELS)


def max_clip_pixels() -> int:
    """Pixels a clip may hold in memory (frames × height × width): ``SLT_MAX_CLIP_PIXELS``, default 2^30."""
    return _limit("SLT_MAX_CLIP_PIXELS", DEFAULT_MAX_CLIP_PIXELS)


def frame_size_error(what: str, width: int, height: int) -> Optional[str]:
    """Why a frame that declares ``width``×``height`` is refused, or None when it is within the limit."""
    if width <= 0 or height <= 0:
        return f"{what}: declares an empty picture ({width}×{height})"
    limit = max_frame_pixels()
    if width * height > limit:
        return (f"{what}: declares {width}×{height} = {width * height:,} pixels, over the limit of {limit:,} per "
                f"frame (refused before decoding; raise SLT_MAX_FRAME_PIXELS if the picture is real)")
    return None


def clip_size_error(what: str, frames: int, height: int, width: int) -> Optional[str]:
    """Why a clip of ``frames`` frames of height×width is refused, or None when it is within the limit."""
    limit = max_clip_pixels()
    if frames * height * width > limit:
        return (f"{what}: {frames} frames of {width}×{height} = {frames * height * width:,} pixels, over the limit of "
                f"{limit:,} per clip (raise SLT_MAX_CLIP_PIXELS, or store the frames smaller)")
    return None


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str) -> List[str]:
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def is_video_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def resized_shape(height: int, width: int, shorter_side: Optional[int]):
    if not shorter_side:
        return height, width
    scale = shorter_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(image: Image.Image, shorter_side: Optional[int]) -> np.ndarray:
    image = image.convert("RGB")
    height, width = resized_shape(image.height, image.width, shorter_side)
    if (height, width) != (image.height, image.width):
        image = image.resize((width, height), Image.BILINEAR)
    return np.asarray(image)


def iter_clip_frames(source: str, shorter_side: Optional[int] = None) -> Iterator[np.ndarray]:
    """Yield the frames of a frame folder or a video file, one uint8 H×W×3 array each, all of one size, within the
    pixel limits (see the module's docstring)."""
    if os.path.isdir(source):
        frames = _iter_folder(source, shorter_side)
    elif os.path.isfile(source):
        frames = _iter_video(source, shorter_side)
    else:
        raise ClipReadError(f"{source}: no such frame folder or video file")
    shape, count = None, 0
    for what, frame in frames:
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise ClipReadError(f"{what}: a frame of {frame.shape[1]}×{frame.shape[0]} where the clip's first is "
                                f"{shape[1]}×{shape[0]}; give the frames one size (or a frame size to resize them)")
        count += 1
        error = clip_size_error(source, count, shape[0], shape[1])
        if error:
            raise ClipReadError(error)
        yield frame


def _iter_folder(source: str, shorter_side: Optional[int]):
    files = list_frame_files(source)
    if not files:
        raise ClipReadError(f"{source}: frame folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    for path in files:
        try:
            with Image.open(path) as image:  # reads the header only: the size is known before decoding
                error = frame_size_error(path, image.width, image.height)
                if error:
                    raise ClipReadError(error)
                frame = _resize(image, shorter_side)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError) as e:
            if isinstance(e, ClipReadError):
                raise
            raise ClipReadError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
        yield path, frame


def _iter_video(path: str, shorter_side: Optional[int]) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise ClipReadError(f"{path}: unreadable video ({e})") from None
    with container:
        if not container.streams.video:
            raise ClipReadError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        error = frame_size_error(path, stream.codec_context.width, stream.codec_context.height)
        if error:
            raise ClipReadError(error)
        try:
            for k, frame in enumerate(container.decode(stream)):
                error = frame_size_error(f"{path} (frame {k + 1})", frame.width, frame.height)
                if error:  # a stream may change its size mid-way
                    raise ClipReadError(error)
                yield f"{path} (frame {k + 1})", _resize(frame.to_image(), shorter_side)
        except (av.error.FFmpegError, ValueError, OSError) as e:
            if isinstance(e, ClipReadError):
                raise
            raise ClipReadError(f"{path}: video decoding failed ({type(e).__name__}: {e})") from None


def read_clip(source: str, shorter_side: Optional[int] = None) -> np.ndarray:
    """All frames of a frame folder or a video file as uint8 T×H×W×3."""
    frames = list(iter_clip_frames(source, shorter_side))
    if not frames:
        raise ClipReadError(f"{source}: no frames could be decoded")
    return np.stack(frames)
