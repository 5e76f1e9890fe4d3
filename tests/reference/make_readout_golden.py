#!/usr/bin/python3
"""Write tests/fixtures/readout/readout.safetensors: the dense readout of report Eq. 6 computed with
PyTorch (F.interpolate bilinear, align_corners=False; softmax; sigmoid with a 0.5 background
channel), as an oracle for lib/readout.c that shares no code with it.

    /usr/bin/python3 tests/reference/make_readout_golden.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_checkpoint as mc  # noqa: E402

GRID_H, GRID_W = 5, 7          # token grid
OUT_H, OUT_W = 37, 61          # upsampled (odd, non-integer factors)
SUBTOKENS = [1, 3, 2, 1, 4]    # sub-token count of each label
TEMPERATURE = 0.2
SIGMOID_SCALE = 0.25
BACKGROUND = 0.5


def main():
    rng = np.random.default_rng(2602)
    n_columns = sum(SUBTOKENS)
    logits = rng.normal(0.0, 3.0, (GRID_H * GRID_W, n_columns)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(SUBTOKENS)]).astype(np.int32)
    logits_t = torch.from_numpy(logits).double()
    scores = torch.stack([logits_t[:, offsets[k]:offsets[k + 1]].mean(1) for k in range(len(SUBTOKENS))], 1)
    grid = scores.T.reshape(1, len(SUBTOKENS), GRID_H, GRID_W)
    up = F.interpolate(grid, size=(OUT_H, OUT_W), mode="bilinear", align_corners=False)[0]  # [K, H, W]
    softmax = torch.softmax(up / TEMPERATURE, 0)
    sig = torch.sigmoid(SIGMOID_SCALE * up)
    with_bg = torch.cat([sig, torch.full((1, OUT_H, OUT_W), BACKGROUND, dtype=sig.dtype)], 0)
    tensors = {
        "logits": logits,
        "offsets": offsets,
        "scores": scores.float().numpy(),
        "upsampled": up.permute(1, 2, 0).float().numpy(),
        "softmax_labels": softmax.argmax(0).int().numpy(),
        "softmax_confidence": softmax.max(0).values.float().numpy(),
        "softmax_probabilities": softmax.permute(1, 2, 0).float().numpy(),
        "background_labels": with_bg.argmax(0).int().numpy(),
        "background_probabilities": (with_bg / with_bg.sum(0, keepdim=True)).permute(1, 2, 0).float().numpy(),
    }
    entries = [(name, "F32" if a.dtype == np.float32 else "I32", list(a.shape), (lambda a=a: [a.tobytes()]))
               for name, a in tensors.items()]
    out = os.path.join(ROOT, "tests", "fixtures", "readout", "readout.safetensors")
    mc.write_safetensors(out, entries, {"temperature": str(TEMPERATURE)}, align=4)
    print("wrote", out)


if __name__ == "__main__":
    main()
