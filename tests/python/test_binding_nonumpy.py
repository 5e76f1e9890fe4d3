"""densemllm without numpy (DENSEMLLM_NO_NUMPY=1, in a child interpreter): results are shaped
memoryviews and inputs may be lists, array.array or bytes; the values equal those of the numpy path
in this process."""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import IMAGE, MAX_PATCHES, SOURCE_DIR

CHILD = r"""
import array, json, sys
import densemllm as dm
assert not dm._arrays.HAVE_NUMPY and "numpy" not in sys.modules
model_dir, image_path, max_patches = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
img = dm.Image.open(image_path)
px = img.pixels
assert isinstance(px, memoryview) and px.readonly and px.shape == (img.height, img.width, 3)
out["pixel_00"] = list(px[0, 0, i] for i in range(3))
rgb = dm.Image.from_rgb(bytes(range(12)), 2, 2)
out["from_rgb"] = rgb.to_array().tolist()
with dm.Model(model_dir, compute=dm.Compute.F32) as model, model.session(max_num_patches=max_patches) as s:
    r = s.predict_dense(img, label_token_ids=[[5], [17], [42]], keep_token_scores=True)
    assert isinstance(r.labels, memoryview) and r.labels.shape == (img.height, img.width)
    out["labels_row0"] = r.labels.tolist()[0]
    out["scores_shape"] = list(r.token_scores.shape)
    out["ids"] = model.tokenize("hello world").tolist()
    out["logits_shape"] = list(s.image_logits(array.array("i", [5, 17])).shape)
with dm.SegMetrics(3) as m:
    m.add([[0, 1], [2, 2]], array.array("H", [0, 1, 1, 2]))
    out["iou"] = m.result().iou.tolist()
labels = array.array("H", [0, 0, 1, 1, 1, 2])
out["text"] = dm.mask_text_write(labels, width=3, height=2)
out["parsed"] = dm.mask_text_parse(out["text"], 3, 2).labels.tolist()
print(json.dumps(out))
"""


def test_memoryview_path_equals_numpy(dm, model, image):
    env = dict(os.environ, DENSEMLLM_NO_NUMPY="1", PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
    result = subprocess.run([sys.executable, "-c", CHILD, model.info.model_dir, IMAGE, str(MAX_PATCHES)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["pixel_00"] == image.pixels[0, 0].tolist()
    assert out["from_rgb"] == np.arange(12).reshape(2, 2, 3).tolist()
    with model.session(max_num_patches=MAX_PATCHES) as s:
        r = s.predict_dense(image, label_token_ids=[[5], [17], [42]], keep_token_scores=True)
        assert out["labels_row0"] == r.labels[0].tolist()
        assert out["scores_shape"] == list(r.token_scores.shape)
        assert out["logits_shape"] == [r.tokens_h * r.tokens_w, 2]
    assert out["ids"] == model.tokenize("hello world").tolist()
    with dm.SegMetrics(3) as m:
        m.add(np.array([0, 1, 2, 2], np.uint16), np.array([0, 1, 1, 2], np.uint16))
        assert np.allclose(out["iou"], m.result().iou)
    assert out["text"] == "<mask>(0,2)(1,3)(2,1)</mask>" and out["parsed"] == [[0, 0, 1], [1, 1, 2]]
