"""The AP-curves plot of every seed: one legend entry per method, the seed told by the line style."""
from benchmarks.compare import plots


def test_seed_curves_legend_has_one_entry_per_method_and_the_title_names_the_seed_styles(tmp_path, monkeypatch):
    plt = plots._pyplot()
    saved = {}
    real_savefig = plt.Figure.savefig

    def keep_figure(fig, path, **kwargs):
        saved["legend"] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        saved["title"] = fig.axes[0].get_title()
        saved["styles"] = sorted({line.get_linestyle() for line in fig.axes[0].get_lines()})
        real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep_figure)
    curves = {0: {"a": [(8, 0.1), (16, 0.2)], "b": [(8, 0.05)]},
              1: {"a": [(8, 0.12), (16, 0.22)], "b": [(8, 0.06)], "c": []}}
    path = tmp_path / "curves.png"
    plots.plot_seed_curves(curves, {"a": "Method A"}, str(path))

    assert path.read_bytes()[:4] == b"\x89PNG"
    assert saved["legend"] == ["Method A", "b"]  # "c" has no evaluation: nothing to draw
    assert "seed 0 solid" in saved["title"] and "seed 1 dashed" in saved["title"]
    assert saved["styles"] == ["-", "--"]


def test_seed_curves_give_every_method_its_own_colour_beyond_ten_methods(tmp_path, monkeypatch):
    plt = plots._pyplot()
    colours = {}
    real_savefig = plt.Figure.savefig

    def keep_colours(fig, path, **kwargs):
        colours.update({line.get_label(): line.get_color() for line in fig.axes[0].get_lines()})
        real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", keep_colours)
    curves = {0: {f"m{i}": [(8, 0.01 * i)] for i in range(12)}}
    plots.plot_seed_curves(curves, {}, str(tmp_path / "curves.png"))
    assert len(colours) == 12 and len(set(colours.values())) == 12
