"""Shared test step: save a model, export it, and predict one image with dygraph and with Paddle Inference."""
import os

import paddle

from ppassign.engine import export, predict


def export_and_predict(config, overrides, model, image_dir, tmp_path):
    """Save `model`'s weights, export with them, predict the first image of `image_dir` both ways.

    Returns:
        (dygraph [N, 6], exported [N, 6]) np.ndarray boxes (class, score, x1, y1, x2, y2).
    """
    import cv2

    weights = str(tmp_path / "w")
    paddle.save(model.state_dict(), weights + ".pdparams")
    model_dir = export.export(config, overrides, weights=weights, output_dir=str(tmp_path / "out"))
    image = cv2.cvtColor(cv2.imread(os.path.join(image_dir, sorted(os.listdir(image_dir))[0])), cv2.COLOR_BGR2RGB)
    dygraph = predict.DygraphPredictor(config, overrides, weights=weights).predict(image)
    exported = predict.ExportedPredictor(model_dir).predict(image)
    return dygraph, exported
