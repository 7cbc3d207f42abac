"""PNG drawings of assignment maps and of AutoAssign's learned centre priors (matplotlib, Agg backend)."""
import numpy as np

# Colours of objects 0, 1, 2, ... (matplotlib's tab10, cycled).
OBJECT_CMAP = "tab10"
# Opacity of a location at its object's largest positive weight.
MAX_ALPHA = 0.85
# Half-width, in strides, of the square on which a centre prior is drawn.
PRIOR_EXTENT = 3.0


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def object_colours(n):
    """np.ndarray[n, 3] RGB in [0, 1]."""
    import matplotlib
    cmap = matplotlib.colormaps[OBJECT_CMAP]
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)], np.float64).reshape(-1, 3)


def positive_overlay(positive, shape, colours):
    """RGBA [H_l, W_l, 4] of one level: each location in the colour of the object with the largest
    (per-object normalised) weight there, opacity proportional to that weight; transparent where none.

    Args:
        positive (np.ndarray[n, H_l * W_l]): the level's slice of AssignmentMap.positive.
        shape ((H_l, W_l)). colours (np.ndarray[n, 3]).
    """
    h, w = shape
    rgba = np.zeros([h * w, 4])
    if positive.shape[0]:
        scale = positive.max(1, keepdims=True)
        norm = np.where(scale > 0, positive / np.where(scale > 0, scale, 1.0), 0.0)
        owner = norm.argmax(0)
        value = norm.max(0)
        rgba[:, :3] = colours[owner]
        rgba[:, 3] = MAX_ALPHA * value
    return rgba.reshape(h, w, 4)


def negative_overlay(negative, shape):
    """RGBA [H_l, W_l, 4] of one level: grey level = the smallest negative weight over the objects whose
    candidate the location is (black = 0: not a negative at all, white = 1); transparent outside candidates."""
    h, w = shape
    rgba = np.zeros([h * w, 4])
    if negative is not None and negative.shape[0]:
        inside = np.isfinite(negative).any(0)
        value = np.where(inside, np.nanmin(np.where(np.isfinite(negative), negative, np.inf), axis=0), 1.0)
        rgba[:, :3] = value[:, None]
        rgba[:, 3] = np.where(inside, MAX_ALPHA, 0.0)
    return rgba.reshape(h, w, 4)


def draw_assignment(amap, image_rgb, path, title=""):
    """One PNG: a column per FPN level; the positive weights (row 1) and, when the method has them, the
    negative weights (row 2) over the image, with the GT boxes in their objects' colours.

    Args:
        amap (AssignmentMap). image_rgb (np.ndarray[H, W, 3] uint8): the network input (boxes' pixels).
        path (str): PNG to write. title (str): figure title.
    """
    plt = _plt()
    grid = amap.grid
    rows = 1 if amap.negative is None else 2
    cols = len(grid.shapes)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows + 0.4), squeeze=False)
    colours = object_colours(len(amap.boxes))
    starts = np.cumsum([0] + grid.counts)
    grey = image_rgb.mean(-1) if image_rgb.ndim == 3 else image_rgb
    for k, ((h, w), stride) in enumerate(zip(grid.shapes, grid.level_strides)):
        cols_slice = slice(starts[k], starts[k + 1])
        layers = [("positive", positive_overlay(amap.positive[:, cols_slice], (h, w), colours))]
        if amap.negative is not None:
            layers.append(("negative", negative_overlay(amap.negative[:, cols_slice], (h, w))))
        for r, (name, overlay) in enumerate(layers):
            ax = axes[r][k]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=255, alpha=0.5,
                      extent=[0, grey.shape[1], grey.shape[0], 0])
            ax.imshow(overlay, interpolation="nearest", extent=[0, w * stride, h * stride, 0])
            for (x1, y1, x2, y2), colour in zip(amap.boxes, colours):
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, lw=1.5))
            ax.set_xlim(0, max(grey.shape[1], w * stride))
            ax.set_ylim(max(grey.shape[0], h * stride), 0)
            pos = amap.positive[:, cols_slice]
            detail = (f"{int((pos > 0).sum())} positives" if amap.hard else f"weight mass {pos.sum():.2f}") \
                if name == "positive" else "negative weight (black 0 .. white 1)"
            ax.set_title(f"stride {stride}, {name}: {detail}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or amap.method, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gaussian_prior_image(mu, sigma, extent=PRIOR_EXTENT, size=121):
    """G(d | mu, sigma) on a [size, size] grid of offsets d in [-extent, extent]^2 strides (AutoAssign eq. 2).

    Args:
        mu (array[2]), sigma (array[2]): (x, y), in strides.
    Returns:
        np.ndarray[size, size]: rows = y offsets (top = -extent), columns = x offsets.
    """
    d = np.linspace(-extent, extent, size)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    z = (dx - mu[0]) ** 2 / (2 * sigma[0] ** 2) + (dy - mu[1]) ** 2 / (2 * sigma[1] ** 2)
    return np.exp(-z)


def draw_center_priors(mu, sigma, class_names, path, extent=PRIOR_EXTENT):
    """One panel per class: the learned prior over a box centred at 0 (offsets in strides), its mean and the
    1-sigma ellipse.

    Args:
        mu, sigma (np.ndarray[C, 2]): AutoAssignHead.mu / .sigma. class_names (list[str]). path (str).
    """
    plt = _plt()
    from matplotlib.patches import Ellipse
    num = len(mu)
    cols = min(5, num)
    rows = -(-num // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[num:]:
        ax.axis("off")
    for c, ax in enumerate(axes.ravel()[:num]):
        ax.imshow(gaussian_prior_image(mu[c], sigma[c], extent), cmap="magma", vmin=0, vmax=1,
                  extent=[-extent, extent, extent, -extent])
        ax.add_patch(Ellipse((mu[c][0], mu[c][1]), 2 * abs(sigma[c][0]), 2 * abs(sigma[c][1]), fill=False,
                             edgecolor="cyan", lw=1))
        ax.plot([mu[c][0]], [mu[c][1]], "c+", ms=8)
        ax.plot([0], [0], "w.", ms=4)
        name = class_names[c] if c < len(class_names) else str(c)
        ax.set_title(f"{name}\nmu=({mu[c][0]:.2f}, {mu[c][1]:.2f}) sigma=({sigma[c][0]:.2f}, {sigma[c][1]:.2f})",
                     fontsize=7)
        ax.set_xlabel("x offset from box centre (strides)", fontsize=6)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
