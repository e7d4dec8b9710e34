"""Alignment plots: what a recognition model saw when, the picture researchers otherwise draw by hand.

One clip's CTC gloss posteriors over time under thumbnails of its frames, each decoded gloss marked where the most
probable CTC path of the decoded sequence emits it (a Viterbi forced alignment: a gloss said twice is marked twice,
at its own place). ``slt-translate --plot`` and :meth:`SignTranslator.plot` draw it. A model without a gloss
classifier (trained on a corpus without glosses) is drawn by :func:`plot_attention` instead: the translator's
cross-attention of its first decoding steps over the clip's time steps.

The picture has a fixed pixel size, ``width_px`` × ``height_px`` (the canvas is written as it is, with no tight
bounding box), so that scripts and tests can rely on it. It is drawn with matplotlib's Agg canvas, without pyplot's
global state, and written under a temporary name that is renamed into place: a killed run leaves no half PNG.
"""

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1200, 600, 100
LEFT, RIGHT, TOP, BOTTOM, GAP = 70, 210, 40, 50, 6  # pixels around the thumbnail strip and the posterior plot
MIN_PLOT_PX = 120


def skeleton_thumbnails(poses: torch.Tensor, bones: Sequence[Tuple[int, int]], size: int = 96) -> torch.Tensor:
    """Keypoints T×K×(D+1) (x, y first, confidence last) → uint8 T×3×size×size pictures of the skeleton, the clip's
    detected points fitted into the square once (the same scale for every frame), for the thumbnail strip."""
    from PIL import Image, ImageDraw

    poses = poses.float().numpy()
    seen = poses[..., -1] > 0
    xy = poses[..., :2]
    if seen.any():
        low, high = xy[seen].min(axis=0), xy[seen].max(axis=0)
    else:
        low, high = np.zeros(2), np.ones(2)
    scale = (size - 8) / max(float((high - low).max()), 1e-6)
    offset = (size - scale * (high - low)) / 2 - scale * low
    out = np.empty((len(poses), size, size, 3), dtype=np.uint8)
    for t in range(len(poses)):
        image = Image.new("RGB", (size, size), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        points = xy[t] * scale + offset
        for a, b in bones:
            if seen[t, a] and seen[t, b]:
                draw.line([tuple(points[a]), tuple(points[b])], fill=(40, 60, 160), width=1)
        for k in np.flatnonzero(seen[t]):
            x, y = points[k]
            draw.rectangle([x - 0.5, y - 0.5, x + 0.5, y + 0.5], fill=(200, 40, 40))
        out[t] = np.asarray(image)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def ctc_segments(log_probs: np.ndarray, tokens: Sequence[int], blank: int) -> List[Tuple[int, int]]:
    """The steps [start, end) at which the most probable CTC path of ``tokens`` emits each of them (T'×V)."""
    states = [blank]
    for token in tokens:
        states += [token, blank]
    n_steps, n_states = len(log_probs), len(states)
    lp = log_probs[:, states]
    # a path may skip a blank between two different glosses, not between a gloss and its repeat
    can_skip = np.array([s >= 2 and states[s] != blank and states[s] != states[s - 2] for s in range(n_states)])
    score = np.full(n_states, -np.inf)
    score[:2] = lp[0, :2]
    back = np.zeros((n_steps, n_states), dtype=np.int64)
    for t in range(1, n_steps):
        candidates = np.full((3, n_states), -np.inf)  # stay, come from the state before, skip a blank
        candidates[0], candidates[1, 1:], candidates[2, 2:] = score, score[:-1], score[:-2]
        candidates[2, ~can_skip] = -np.inf
        back[t] = np.arange(n_states) - candidates.argmax(axis=0)
        score = candidates.max(axis=0) + lp[t]
    state = n_states - 1 if n_states == 1 or score[-1] >= score[-2] else n_states - 2
    if not np.isfinite(score[state]):
        raise ValueError(f"{len(tokens)} glosses cannot be aligned to {n_steps} steps of these posteriors")
    path = np.empty(n_steps, dtype=np.int64)
    for t in range(n_steps - 1, -1, -1):
        path[t] = state
        state = back[t, state]
    return [(int(steps[0]), int(steps[-1]) + 1) for steps in (np.flatnonzero(path == 2 * i + 1)
                                                                for i in range(len(tokens)))]


def plot_alignment(frames: torch.Tensor, log_probs: torch.Tensor, dictionary, tokens: Sequence[int], path: str,
                   title: Optional[str] = None, thumbnails: int = 8, others: int = 3, blank: Optional[int] = None,
                   width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX, dpi: int = DPI) -> str:
    """Draw one clip into the PNG ``path``; returns ``path``.

    ``frames``: uint8 T×3×H×W, as the model saw them; ``log_probs``: the T'×V CTC log-posteriors of its valid
    steps (each covers T/T' frames); ``tokens``: the decoded gloss ids of ``dictionary`` (blank: its ``bos``).
    Drawn: blank (grey, dashed), the decoded glosses and the ``others`` most confident glosses that were not decoded.
    """
    frames, log_probs = torch.as_tensor(frames).cpu(), torch.as_tensor(log_probs).float().cpu().numpy()
    probs = np.exp(log_probs)
    n_frames, n_steps, tokens = len(frames), len(probs), [int(t) for t in tokens]
    blank = dictionary.bos() if blank is None else blank
    per_step = n_frames / n_steps
    x = (np.arange(n_steps) + 0.5) * per_step  # the centre frame of each output step
    decoded = list(dict.fromkeys(tokens))
    confident = [int(v) for v in np.argsort(-probs.max(axis=0), kind="stable")
                 if v >= dictionary.nspecial and v not in decoded][:others]
    palette = colormaps["tab10" if len(decoded) + len(confident) <= 10 else "tab20"]
    colour = {v: palette(k % palette.N) for k, v in enumerate(decoded + confident)}

    fig, canvas, ax = _frames_and_plot_area(frames, title, thumbnails, width_px, height_px, dpi)
    ax.plot(x, probs[:, blank], color="0.55", linestyle="--", linewidth=1, label="blank")
    for v in decoded:
        ax.plot(x, probs[:, v], color=colour[v], linewidth=1.8, label=dictionary[v])
    for v in confident:
        ax.plot(x, probs[:, v], color=colour[v], linewidth=1, alpha=0.7, label=f"{dictionary[v]} (not decoded)")
    for i, (v, (start, end)) in enumerate(zip(tokens, ctc_segments(log_probs, tokens, blank))):
        peak = x[start + int(np.argmax(probs[start:end, v]))]
        ax.axvspan(start * per_step, end * per_step, color=colour[v], alpha=0.12, linewidth=0)
        ax.axvline(peak, color=colour[v], linewidth=0.8, linestyle=":")
        ax.text(peak, 1.03 + 0.08 * (i % 2), dictionary[v], color=colour[v], fontsize=8, ha="center", va="bottom")
    ax.set_xlim(0, n_frames)
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xlabel("frame")
    ax.set_ylabel("CTC posterior")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)

    return _write_png(canvas, path)


def plot_attention(frames: torch.Tensor, attention: torch.Tensor, pieces: Sequence[str], path: str,
                   title: Optional[str] = None, thumbnails: int = 8, width_px: int = WIDTH_PX,
                   height_px: int = HEIGHT_PX, dpi: int = DPI) -> str:
    """Draw where the translator looked: for each of its first decoding steps (a row, labelled with the sub-word it
    wrote) the cross-attention over the clip's T' encoder steps, under thumbnails of the frames; returns ``path``.
    The picture of a model without a gloss classifier, which has no gloss posteriors to show.

    ``frames``: uint8 T×3×H×W as the model saw them; ``attention``: S×T' weights of the S steps drawn over the
    clip's valid steps (each covers T/T' frames); ``pieces``: the S sub-words written."""
    frames = torch.as_tensor(frames).cpu()
    weights = torch.as_tensor(attention).float().cpu().numpy()
    n_frames, (n_rows, n_steps) = len(frames), weights.shape
    if n_rows != len(pieces) or n_rows == 0 or n_steps == 0:
        raise ValueError(f"attention of shape {weights.shape} for {len(pieces)} sub-words: nothing to draw")
    fig, canvas, ax = _frames_and_plot_area(frames, title, thumbnails, width_px, height_px, dpi)
    image = ax.imshow(weights, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0,
                      extent=(0, n_frames, n_rows, 0))
    ax.set_yticks(np.arange(n_rows) + 0.5)
    ax.set_yticklabels(pieces, fontsize=8)
    ax.set_xlim(0, n_frames)
    ax.set_xlabel("frame")
    ax.set_ylabel("decoding step")
    colour_bar = fig.add_axes([(width_px - RIGHT + 20) / width_px, BOTTOM / height_px, 12 / width_px,
                               ax.get_position().height])
    fig.colorbar(image, cax=colour_bar, label="cross-attention")
    return _write_png(canvas, path)


def _frames_and_plot_area(frames: torch.Tensor, title: Optional[str], thumbnails: int, width_px: int,
                          height_px: int, dpi: int):
    """(figure, canvas, the plot's axes) of a picture of fixed size: a strip of square thumbnails of the frames, each
    over the span of frames it stands for, above axes that share its frame axis."""
    n_frames = len(frames)
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    count = max(1, min(thumbnails, n_frames))
    axes_px = width_px - LEFT - RIGHT
    thumb_px = axes_px / count  # square thumbnails: the crops are square
    plot_px = height_px - TOP - BOTTOM - GAP - thumb_px
    if plot_px < MIN_PLOT_PX:
        raise ValueError(f"{width_px}×{height_px} px leaves no room for the plot under {count} thumbnails")

    def box(bottom: float, height: float):
        return [LEFT / width_px, bottom / height_px, axes_px / width_px, height / height_px]

    ax = fig.add_axes(box(BOTTOM, plot_px))
    strip = fig.add_axes(box(BOTTOM + plot_px + GAP, thumb_px), sharex=ax)
    for i in range(count):  # each thumbnail over the span of frames it stands for, showing the middle one
        lo, hi = i * n_frames / count, (i + 1) * n_frames / count
        strip.imshow(frames[min(int((lo + hi) / 2), n_frames - 1)].permute(1, 2, 0).numpy(),
                     extent=(lo, hi, 0, 1), aspect="auto")
        if i:
            strip.axvline(lo, color="white", linewidth=1)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.tick_params(axis="x", bottom=False, labelbottom=False)
    if title:  # one line, cut to the width of the picture (≈ 7.5 px a character at 10 pt and 100 dpi)
        room = int((width_px - LEFT) / (7.5 * dpi / 100))
        strip.set_title(title if len(title) <= room else title[: room - 1] + "…", fontsize=10, loc="left")
    return fig, canvas, ax


def _write_png(canvas, path: str) -> str:
    """The canvas as it is (exactly its pixel size) into ``path``, under a temporary name renamed into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            canvas.print_png(f)  # the canvas as it is: exactly width_px × height_px
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
