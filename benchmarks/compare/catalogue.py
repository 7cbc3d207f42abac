"""What tools/compare.py can train: the methods, their ablation variants and the group names of ``--methods``.

Each name is a config in ``benchmarks/configs/`` (found relative to this folder, so a checkout works whatever
way ppassign is installed). The methods share ``_base_compare.yml`` (data, backbone, neck, optimizer, readers)
and differ in their head; a variant is a method's file plus one change (``benchmarks/configs/variants/``).
"""
import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# The methods: name -> (config file in CONFIG_DIR, label in the tables, one line for --help). The tables' order.
_METHODS = {
    "fcos": ("fcos.yml", "FCOS (ppdet FCOSHead, baseline)",
             "PaddleDetection's FCOSHead: scale ranges and centre sampling (Tian et al., ICCV 2019)"),
    "atss_only": ("atss_only.yml", "ATSS only (PP-YOLOE head)",
                  "PP-YOLOE head with the ATSS assigner for the whole run (Zhang et al., CVPR 2020)"),
    "tal_only": ("tal_only.yml", "task-aligned only (PP-YOLOE head)",
                 "PP-YOLOE head with the task-aligned assigner from the first step (TOOD, Feng et al., ICCV 2021)"),
    "dsl_only": ("dsl_only.yml", "dynamic soft labels only (PP-YOLOE head)",
                 "PP-YOLOE head with RTMDet's dynamic soft-label assigner from the first step (Lyu et al., 2022)"),
    "autoassign": ("autoassign.yml", "AutoAssign",
                   "AutoAssign head: centre prior, confidence weighting, implicit objectness (Zhu et al., 2020)"),
    "dw_norefine": ("dw_norefine.yml", "DW without refinement",
                    "DW head: dual weighting of positives and negatives, no box refinement (Li et al., CVPR 2022)"),
    "dw": ("dw.yml", "DW with refinement", "DW head with its box refinement"),
}
# RetinaNet (ppdet's architecture with PPAssignRetinaHead) with each RetinaNet assigner: key -> its name.
RETINA_ASSIGNERS = {"maxiou": "max-IoU", "topk": "top-k", "atss": "ATSS", "fcos_rule": "FCOS rule",
                    "noisy_anchor": "noisy-anchor", "hambox": "HAMBox"}
for _key, _name in RETINA_ASSIGNERS.items():
    _METHODS[f"retina_{_key}"] = (f"retina_{_key}.yml", f"RetinaNet A=1, {_name}",
                                  f"RetinaNet, one anchor per location, {_name} assigner")
for _key, _name in RETINA_ASSIGNERS.items():
    _METHODS[f"retina9_{_key}"] = (f"retina9_{_key}.yml", f"RetinaNet A=9, {_name}",
                                   f"RetinaNet, nine anchors per location, {_name} assigner")
# ppdet's FCOSHead with another rule choosing its positives (PPAssignFCOSHead): the ATSS paper's crossing.
_METHODS["fcos_atss"] = ("fcos_atss.yml", "FCOS (ppdet FCOSHead) with ATSS",
                         "PaddleDetection's FCOSHead with ATSS on one virtual anchor per point (ATSS paper)")

# The variants (benchmarks/configs/variants/<name>.yml): name -> (group, label in the tables = what it changes).
VARIANTS = {
    "fcos_sgd": ("setup", "FCOS, SGD 0.005 + momentum (papers' optimizer)"),
    "autoassign_sgd": ("setup", "AutoAssign, SGD 0.005 + momentum (papers' optimizer)"),
    "dw_sgd": ("setup", "DW, SGD 0.005 + momentum (papers' optimizer)"),
    "fcos_nonormdecay": ("setup", "FCOS, no weight decay on norm parameters"),
    "autoassign_nonormdecay": ("setup", "AutoAssign, no weight decay on norm parameters"),
    "dw_nonormdecay": ("setup", "DW, no weight decay on norm parameters"),
    "autoassign_p37": ("setup", "AutoAssign on P3-P7"),
    "dw_p37": ("setup", "DW on P3-P7"),
    "autoassign_bias": ("align", "AutoAssign, bias in the tower convs"),
    "autoassign_offset0": ("align", "AutoAssign, point offset 0"),
    "dw_nobias": ("align", "DW, no bias in the tower convs"),
    "dw_norefine_nobias": ("align", "DW without refinement, no bias in the tower convs"),
    "dw_clamp": ("align", "DW, refinement points clamped into the map"),
    "autoassign_prior_fixed": ("autoassign_ablation", "AutoAssign, centre prior fixed"),
    "autoassign_prior_off": ("autoassign_ablation", "AutoAssign, no centre prior"),
    "autoassign_noconf": ("autoassign_ablation", "AutoAssign, no confidence weighting"),
    "autoassign_noobj": ("autoassign_ablation", "AutoAssign, no implicit objectness"),
    "dw_norefine_posonly": ("dw_ablation", "DW without refinement, positive weighting only"),
    "dw_norefine_negonly": ("dw_ablation", "DW without refinement, negative weighting only"),
    "retina_noisy_anchor_alpha025": ("retina_ablation", "RetinaNet A=1, noisy-anchor, focal alpha 0.25"),
    "retina9_atss_anchors": ("retina_ablation", "RetinaNet A=9, ATSS, k = 9 anchors (not locations)"),
}

# Every name --methods takes: name -> (config file in CONFIG_DIR, label). Methods first, then the variants.
METHODS = {name: (config, label) for name, (config, label, _) in _METHODS.items()}
METHODS.update({name: (os.path.join("variants", f"{name}.yml"), label) for name, (_, label) in VARIANTS.items()})

# Names that stand for several methods in --methods: name -> (what it is, its methods); then the variants'.
_GROUPS = {
    "all": ("the six FCOS-style and PP-YOLOE methods of the comparison",
            ["fcos", "atss_only", "tal_only", "autoassign", "dw_norefine", "dw"]),
    "retinanet": ("RetinaNet with each assigner, one anchor per location", [f"retina_{k}" for k in RETINA_ASSIGNERS]),
    "retinanet9": ("RetinaNet with each assigner, nine anchors per location",
                   [f"retina9_{k}" for k in RETINA_ASSIGNERS]),
}
VARIANT_GROUPS = {
    "setup": "the papers' training set-up in place of the shared one (optimizer, norm decay, levels)",
    "align": "one implementation detail set the other way than the head's default (bias, point offset, sampling)",
    "autoassign_ablation": "AutoAssign with one of its parts fixed or switched off",
    "dw_ablation": "DW with one of its two weightings switched off",
    "retina_ablation": "a RetinaNet row with one setting of its rule or loss set another way",
}
for _group, _about in VARIANT_GROUPS.items():
    _GROUPS[_group] = (_about, [name for name, (group, _) in VARIANTS.items() if group == _group])
GROUPS = {name: members for name, (_, members) in _GROUPS.items()}


def parse_methods(text):
    """'fcos,dw' or ['fcos', 'dw'] or a group ('all', 'retinanet', 'retinanet9', also inside a list)
    -> checked list of method names, groups expanded in METHODS order, duplicates dropped."""
    items = ["all"] if text is None else \
        [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    names = []
    for item in items:
        for name in GROUPS.get(item, [item]):
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("methods must name at least one method")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; `tools/compare.py --list` shows the methods, variants "
                         f"and groups")
    return names


def config_path(name, config_dir=CONFIG_DIR):
    """Absolute path of the config of method or variant `name`."""
    return os.path.abspath(os.path.join(config_dir, METHODS[name][0]))


def _lines(entries):
    width = max(len(name) for name, _ in entries) + 2
    return [f"  {name.ljust(width)}{about}" for name, about in entries]


def methods_listing():
    """The methods and their groups, one line each (tools/compare.py --help and --list)."""
    return "\n".join(["methods (--methods takes one or more, comma-separated, and group names):",
                      *_lines([(name, about) for name, (_, _, about) in _METHODS.items()]),
                      "groups of methods:",
                      *_lines([(name, about) for name, (about, _) in _GROUPS.items() if name not in VARIANT_GROUPS])])


def variants_note():
    """One line for --help: what the variants are and where they are listed."""
    return (f"variants: {len(VARIANTS)} more names, each a method with one change (optimizer, levels, head switches,\n"
            f"  ablations), in the groups {', '.join(VARIANT_GROUPS)}; --list shows them")


def variants_listing():
    """The variants by group, one line each (tools/compare.py --list)."""
    lines = []
    for group, about in VARIANT_GROUPS.items():
        lines += [f"variants, group {group}: {about}",
                  *_lines([(name, label) for name, (g, label) in VARIANTS.items() if g == group])]
    return "\n".join(lines)
