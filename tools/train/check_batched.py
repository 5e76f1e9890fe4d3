#!/usr/bin/python3
"""Check tools/train/batched.py against the per-sample path (tiny_model + youtu_vl_ref, train.sample_loss):
(a) hidden states, (b) losses, (c) gradients, on a freshly initialised model as train.py builds it;
(a) again on the trained weights of models/tiny; then (d) the time per sample of fwd+bwd both ways
(one thread unless --threads).

    /usr/bin/python3 tools/train/check_batched.py [--seed S] [--samples N] [--batch B] [--model-dir DIR]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import batched
import data
import tiny_model as tm
import train
from evaluate import load_model

HERE = os.path.dirname(os.path.abspath(__file__))


def rel(a, b):
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def check_forward(W, cfg, samples):
    worst = 0.0
    with torch.no_grad():
        for group in train.same_size_groups(samples):
            pixels, grid = batched.pixel_values([s["image"] for s in group])
            for b, s in enumerate(group):
                expect, expect_grid = tm.pixel_values(s["image"])
                assert grid == expect_grid and torch.equal(pixels[b], expect), "pixel values differ"
            hidden = batched.forward(W, cfg, [s["image"] for s in group], [s["ids"] for s in group])
            for b, s in enumerate(group):
                expect = tm.llm_hidden(W, cfg, s["ids"], tm.encode_image(W, cfg, s["image"])[0])
                worst = max(worst, rel(hidden[b, :len(s["ids"])], expect))
    return worst


def per_sample_losses(W, cfg, group, fc):
    """train.py's step over a group: mean losses, gradient of their sum accumulated per sample."""
    total = np.zeros(2)
    for s in group:
        l_ntpm, l_text = train.sample_loss(W, cfg, s, fc)
        ((l_ntpm + l_text) / len(group)).backward()
        total += (l_ntpm.item() / len(group), l_text.item() / len(group))
    return total


def grads(W):
    out = {k: (None if p.grad is None else p.grad.clone()) for k, p in W.items()}
    for p in W.values():
        p.grad = None
    return out


def check_loss_and_grads(W, cfg, samples, fc):
    worst_loss, worst_grad, worst_name = 0.0, 0.0, None
    for group in train.same_size_groups(samples):
        expect = per_sample_losses(W, cfg, group, fc)
        g_ref = grads(W)
        l_ntpm, l_text = batched.loss(W, cfg, group, fc)
        (l_ntpm + l_text).backward()
        g_new = grads(W)
        got = np.array([l_ntpm.item(), l_text.item()])
        worst_loss = max(worst_loss, float(np.max(np.abs(got - expect) / np.abs(expect))))
        for name in W:
            assert (g_ref[name] is None) == (g_new[name] is None), name
            if g_ref[name] is not None:
                e = rel(g_new[name], g_ref[name])
                if e > worst_grad:
                    worst_grad, worst_name = e, name
    return worst_loss, worst_grad, worst_name


def timing(W, cfg, group, fc, repeats):
    def per_sample():
        per_sample_losses(W, cfg, group, fc)

    def one_batch():
        l_ntpm, l_text = batched.loss(W, cfg, group, fc)
        (l_ntpm + l_text).backward()

    # Interleaved, best of `repeats`: other work on the machine slows both paths alike.
    best = [float("inf"), float("inf")]
    for r in range(repeats + 1):
        for i, fn in enumerate((per_sample, one_batch)):
            t0 = time.perf_counter()
            fn()
            if r:                                       # the first round is a warm-up
                best[i] = min(best[i], time.perf_counter() - t0)
            grads(W)
    return [1000 * t / len(group) for t in best]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=4)           # a seed whose 8 samples include crops
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="B of the timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the timing")
    ap.add_argument("--model-dir", default=os.path.join(HERE, "..", "..", "models", "tiny"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    _, vocab, cfg, W = train.fresh_model(args.seed)
    fc = vocab.first_coordinate
    rng = np.random.default_rng(args.seed)
    samples = [data.make_sample(rng, vocab) for _ in range(args.samples)]
    # Targets are arbitrary id lists: a repeated positive, a coordinate id positive in one token and
    # excluded in another, an excluded id also positive.
    p0, e0 = samples[0]["targets"][0]
    samples[0]["targets"][0] = (p0 + p0[:1] + [fc + 7], e0 + p0[:1])
    samples[0]["targets"][1] = (samples[0]["targets"][1][0], samples[0]["targets"][1][1] + [fc + 7])
    print("samples (image size, crop):", sorted((tuple(s["image"].shape[:2]), "fg" in s) for s in samples))

    e_fwd = check_forward(W, cfg, samples)
    print("(a) forward, initial weights: max rel error %.2e" % e_fwd)
    assert e_fwd <= 1e-5, e_fwd
    e_loss, e_grad, e_name = check_loss_and_grads(W, cfg, samples, fc)
    print("(b) loss: max rel error %.2e" % e_loss)
    print("(c) gradients: max rel error %.2e (%s)" % (e_grad, e_name))
    assert e_loss <= 1e-5 and e_grad <= 1e-4, (e_loss, e_grad, e_name)

    cfg_t, W_t, tok_t = load_model(args.model_dir)
    vocab_t = data.Vocabulary(tok_t)
    rng_t = np.random.default_rng(args.seed + 1)
    e_trained = check_forward(W_t, cfg_t, [data.make_sample(rng_t, vocab_t) for _ in range(args.samples)])
    print("(a) forward, %s: max rel error %.2e" % (os.path.normpath(args.model_dir), e_trained))
    assert e_trained <= 1e-5, e_trained

    group = [data.make_sample(rng, vocab, (256, 256), crop_fraction=0.0) for _ in range(args.batch)]
    torch.set_num_threads(args.threads)
    ms_ref, ms_new = timing(W, cfg, group, fc, args.repeats)
    print("(d) fwd+bwd per sample, %d thread(s), %s images: per-sample %.1f ms, batched B=%d %.1f ms (x%.1f)"
          % (args.threads, group[0]["image"].shape[:2], ms_ref, args.batch, ms_new, ms_ref / ms_new))
    print(json.dumps(dict(forward=e_fwd, forward_trained=e_trained, loss=e_loss, grad=e_grad,
                          ms_per_sample=ms_ref, ms_batched=ms_new)))


if __name__ == "__main__":
    main(sys.argv[1:])
