"""The comparison's plots (PNG): one seed's loss and AP curves of every method, and the AP curves of every seed."""


def _pyplot():
    """matplotlib.pyplot drawing to files only (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(runs, path):
    """PNG with the training loss vs iteration and the mAP vs epoch of every method.

    Args:
        runs (dict): method -> {'label', 'metrics' (records.run_metrics)}.
    """
    plt = _pyplot()
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in runs.items():
        loss = run["metrics"]["loss"]
        if loss:
            ax_loss.plot([e * n + s + 1 for e, s, n, _ in loss], [v for *_, v in loss], label=run["label"])
        evals = run["metrics"]["evals"]
        if evals:
            ax_map.plot([e + 1 for e, _ in evals], [100 * stats[0] for _, stats in evals], marker="o",
                        label=run["label"])
    ax_loss.set(xlabel="iteration", ylabel="training loss (each method's own total)", title="loss")
    ax_map.set(xlabel="epoch", ylabel="COCO AP (%)", title="AP@[.5:.95] on the val split")
    for ax in (ax_loss, ax_map):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run stopped before its first evaluation has no AP curve
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


_SEED_STYLES = [("-", "solid"), ("--", "dashed"), (":", "dotted"), ("-.", "dash-dot")]  # seed k: style k


def plot_seed_curves(curves, labels, path):
    """PNG of AP vs epoch: one colour per method, one line style per seed.

    Args:
        curves (dict): seed -> method -> [(epoch, AP as a fraction), ...], as `collect_curves` returns.
        labels (dict): method -> label for the legend (the method's name where missing).
        path (str): the PNG to write.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    colours, seeds = {}, sorted(curves)
    names = {name for runs in curves.values() for name, points in runs.items() if points}
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors  # a colour of its own per method
    for k, seed in enumerate(seeds):
        for name, points in curves[seed].items():
            if not points:
                continue
            first = name not in colours  # one legend entry per method; the line style tells the seed
            colour = colours.setdefault(name, palette[len(colours) % len(palette)])
            ax.plot([e for e, _ in points], [100 * ap for _, ap in points], _SEED_STYLES[k % len(_SEED_STYLES)][0],
                    color=colour, marker="o", markersize=3, label=labels.get(name, name) if first else None)
    seed_styles = ", ".join(f"seed {seed} {_SEED_STYLES[k % len(_SEED_STYLES)][1]}" for k, seed in enumerate(seeds))
    ax.set(xlabel="epoch", ylabel="COCO AP (%)", title=f"AP@[.5:.95] on the val split ({seed_styles})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
