"""The AP-curves plot of every seed: one legend entry and one colour per method, the seed told by the line style."""
from benchmarks.compare import plots


def _draw(monkeypatch, tmp_path, curves, labels):
    """Draw `curves`; -> (the axes as it was saved, the PNG's path)."""
    plt = plots._pyplot()
    saved, real_savefig = {}, plt.Figure.savefig

    def keep_axes(fig, path, **kwargs):
        saved["ax"] = fig.axes[0]
        real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep_axes)
    path = tmp_path / "curves.png"
    plots.plot_seed_curves(curves, labels, str(path))
    return saved["ax"], path


def test_seed_curves_legend_has_one_entry_per_method_and_the_title_names_the_seed_styles(tmp_path, monkeypatch):
    curves = {0: {"a": [(8, 0.1), (16, 0.2)], "b": [(8, 0.05)]},
              1: {"a": [(8, 0.12), (16, 0.22)], "b": [(8, 0.06)], "c": []}}
    ax, path = _draw(monkeypatch, tmp_path, curves, {"a": "Method A"})

    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Method A", "b"]  # "c": nothing to draw
    assert "seed 0 solid" in ax.get_title() and "seed 1 dashed" in ax.get_title()
    assert sorted({line.get_linestyle() for line in ax.get_lines()}) == ["-", "--"]


def test_seed_curves_give_every_method_its_own_colour_beyond_ten_methods(tmp_path, monkeypatch):
    curves = {0: {f"m{i}": [(8, 0.01 * i)] for i in range(12)}}
    ax, _ = _draw(monkeypatch, tmp_path, curves, {})
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert len(colours) == 12 and len(set(colours.values())) == 12
