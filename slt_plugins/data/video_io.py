"""Reading a clip from where datasets and users keep it: a folder of frame images or a video file.

Video files are decoded with PyAV (FFmpeg), so any container and codec FFmpeg knows works. Frames come back as
uint8 RGB, T×H×W×3, optionally resized so that the shorter side has a given length.
"""

import os
import re
from typing import Iterator, List, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")


class ClipReadError(ValueError):
    """A clip that cannot be read; the message names the path and the reason."""


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
    """Yield the frames of a frame folder or a video file, one uint8 H×W×3 array each."""
    if os.path.isdir(source):
        files = list_frame_files(source)
        if not files:
            raise ClipReadError(f"{source}: frame folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        for path in files:
            try:
                with Image.open(path) as image:
                    yield _resize(image, shorter_side)
            except (UnidentifiedImageError, OSError) as e:
                raise ClipReadError(f"{path}: unreadable image ({e})") from None
    elif os.path.isfile(source):
        yield from _iter_video(source, shorter_side)
    else:
        raise ClipReadError(f"{source}: no such frame folder or video file")


def _iter_video(path: str, shorter_side: Optional[int]) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise ClipReadError(f"{path}: unreadable video ({e})") from None
    with container:
        if not container.streams.video:
            raise ClipReadError(f"{path}: the file has no video stream")
        try:
            for frame in container.decode(video=0):
                yield _resize(frame.to_image(), shorter_side)
        except av.error.FFmpegError as e:
            raise ClipReadError(f"{path}: video decoding failed ({e})") from None


def read_clip(source: str, shorter_side: Optional[int] = None) -> np.ndarray:
    """All frames of a frame folder or a video file as uint8 T×H×W×3."""
    frames = list(iter_clip_frames(source, shorter_side))
    if not frames:
        raise ClipReadError(f"{source}: no frames could be decoded")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ClipReadError(f"{source}: frames differ in size ({sorted(shapes)}); pass a frame size to resize them")
    return np.stack(frames)
