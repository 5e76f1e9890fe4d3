#!/usr/bin/python3
"""Train the tiny DenseMLLM (issue 6) with NTP-M on the vision tokens plus next-token prediction
on the answers, and write the model directory (config.json, model.safetensors, tokenizer.json,
readout_profile.json, sample.png, training.json).

    /usr/bin/python3 tools/train/train.py OUT_DIR [--steps N] [--seed S]

Reproducible bit for bit from the seed on the same machine class (every random draw comes from
numpy Generators seeded from --seed and the sample's index; torch runs deterministic CPU kernels on
one thread, the second core makes the samples).

Loss of one sample, as implemented (model-spec §9.1, report Eq. 7-9):
  z_i = h_i . E            logits of image token i over the whole vocabulary (tied head E), h_i the
                           final-normed hidden state AT the token's own position ("own" alignment)
  P_i                      positives: sub-token ids of every class covering >= MIN_COVERAGE of the
                           token's 32x32 area, its depth bins <custom_k> (only its object's when
                           an object covers at least half of it), the token's own centre
                           <x_k>, <y_k> and the box corners of the object covering at least half
                           of it (our addition, see data.py), or <FG>/<BG> in crops
  M_i                      valid ids: the vocabulary minus the ids of tasks without annotation here
                           and minus coordinates within data.COORD_TOLERANCE_PX of a positive one
  N_i                      the K_NEGATIVES ids of M_i \\ P_i with the largest sigmoid(z) ("relevant
                           negatives"); positives and negatives are averaged separately, never ranked
  L_NTP-M = mean_i [ -mean_{j in P_i} log sigmoid(z_ij) - mean_{j in N_i} log(1 - sigmoid(z_ij)) ]
  L_text  = cross-entropy of the answer tokens of every turn (each with its <|end_of_text|>),
            averaged with weight COORD_WEIGHT on coordinates <x_k>/<y_k> and 1 elsewhere; a
            coordinate's target is spread over the same axis's coordinates as a Gaussian of
            COORD_SIGMA px (the coordinate embeddings start smooth in k, see
            tiny_model.coordinate_embeddings)
  L       = L_text + L_NTP-M ; AdamW, linear warm-up then cosine decay, BATCH samples per step
            (the mean of L over them; samples of one image size go through batched.py together).
sample_loss below is that definition for one sample on the reference forward pass; training runs
batched.loss, which check_batched.py holds equal to it.
"""
import argparse
import json
import math
import multiprocessing
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

import batched
import data
import scenes
import tiny_model as tm

K_NEGATIVES = 16
COORD_SIGMA = 3.0
COORD_WEIGHT = 3.0          # a coordinate counts 3 times in L_text: 4 of a grounding answer's ~25 tokens
BATCH = 8
LR = 2e-3
WARMUP = 100
WEIGHT_DECAY = 0.01


def ntpm_loss(z, positives, excluded):
    """z [N, V]; positives / excluded: per token lists of ids."""
    n, v = z.shape
    pos = torch.zeros(n, v, dtype=torch.bool)
    valid = torch.ones(n, v, dtype=torch.bool)
    for i, (p, e) in enumerate(zip(positives, excluded)):
        pos[i, p] = True
        if e:
            valid[i, e] = False
    pos_term = -(torch.nn.functional.logsigmoid(z) * pos).sum(1) / pos.sum(1).clamp(min=1)
    candidates = z.masked_fill(~(valid & ~pos), float("-inf"))
    top = candidates.topk(K_NEGATIVES, dim=1).indices
    neg_term = -torch.nn.functional.logsigmoid(-z.gather(1, top)).mean(1)
    return (pos_term + neg_term).mean()


def text_targets(ids, first_coordinate_id, vocab_size):
    """[len(ids), vocab] soft target rows (one-hot except at coordinate tokens)."""
    target = torch.zeros(len(ids), vocab_size)
    offsets = torch.arange(-6, 7)
    for row, token in enumerate(ids):
        c = token - first_coordinate_id
        if 0 <= c < 2 * tm.COORDINATES:
            k, axis = c // 2, c % 2
            ks = (k + offsets).clamp(0, tm.COORDINATES - 1)
            weights = torch.exp(-0.5 * ((ks - k).float() / COORD_SIGMA) ** 2)
            target[row].index_add_(0, first_coordinate_id + 2 * ks + axis, weights / weights.sum())
        else:
            target[row, token] = 1.0
    return target


def text_weights(ids, first_coordinate_id):
    """[len(ids)] weight of each answer token in L_text: COORD_WEIGHT for coordinates, else 1."""
    ids = torch.tensor(ids)
    is_coordinate = (ids >= first_coordinate_id) & (ids < first_coordinate_id + 2 * tm.COORDINATES)
    return torch.where(is_coordinate, COORD_WEIGHT, 1.0)


def sample_loss(W, cfg, sample, first_coordinate_id):
    embeds, grid = tm.encode_image(W, cfg, sample["image"])
    hidden = tm.llm_hidden(W, cfg, sample["ids"], embeds)
    E = W["model.embed_tokens.weight"]
    n = embeds.shape[0]
    z = hidden[sample["pad0"]:sample["pad0"] + n] @ E.T
    positives = [t[0] for t in sample["targets"]]
    excluded = [t[1] for t in sample["targets"]]
    l_ntpm = ntpm_loss(z, positives, excluded)
    positions, answer = data.answer_positions(sample)
    text_logits = hidden[positions] @ E.T
    target = text_targets(answer, first_coordinate_id, text_logits.shape[1])
    weights = text_weights(answer, first_coordinate_id)
    l_text = (weights * -(target * torch.log_softmax(text_logits, dim=1)).sum(1)).sum() / weights.sum()
    return l_ntpm, l_text


class SampleStream:
    """Training samples made in order by one worker process (the second core): sample k comes from
    the numpy Generator seeded (seed, k), so the stream is the same whatever the timing. The scenes
    of one step (BATCH samples) share one size, drawn from (seed, step), so that they go through the
    batched forward together; crops keep their own sizes."""

    def __init__(self, seed, vocab, count):
        ctx = multiprocessing.get_context("fork")
        self.queue = ctx.Queue(maxsize=32)
        self.worker = ctx.Process(target=SampleStream._produce, args=(seed, vocab, count, self.queue), daemon=True)
        self.worker.start()

    @staticmethod
    def _produce(seed, vocab, count, queue):
        for k in range(count):
            step_rng = np.random.default_rng([seed, k // BATCH, 0])
            size = scenes.SIZES[step_rng.integers(len(scenes.SIZES))]
            queue.put(data.make_sample(np.random.default_rng([seed, k]), vocab, size))

    def get(self):
        return self.queue.get()


def same_size_groups(samples):
    """The samples grouped by image size (the batched forward needs one size), in stream order."""
    groups = {}
    for sample in samples:
        groups.setdefault(sample["image"].shape, []).append(sample)
    return list(groups.values())


def learning_rate(step, steps):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def write_profile(path):
    profile = {
        "alignment": "own",
        "class_name_prefix": "",
        "class_score": "mean",
        # Each label's sigmoid is a probability under NTP-M, and how sure the model is differs by
        # label: a token of background far from an object is surer of <BG> than one inside it is of
        # <FG>. Blended logits move every boundary towards the less sure side; blended
        # probabilities do not (FG/BG given the true box: cIoU 0.56 -> 0.69, models/tiny/README.md).
        "interpolation": "probabilities",
        "depth_token_format": "<custom_%d>",
        "depth_first_bin": 1,
        "depth_bins": tm.DEPTH_BINS,
        # The report's x2 (App. A.1.7). On validation scenes of the training distribution (heldout.py
        # seeds 777 and 778, 48 each; not the held-out seed) delta1 was 0.910 / 0.907 with x2, 0.904 /
        # 0.899 with x8 and 0.900 / 0.896 at full resolution.
        "depth_upsample": 2,
        # The mean bin within 12 bins (a factor 1.32, about delta1's 1.25) of each x2 cell's argmax
        # instead of the argmax alone: the map follows the blend between tokens instead of stepping
        # by whole bins. On the validation seeds 777 / 778 delta1 0.914 / 0.911 and AbsRel 0.083 /
        # 0.082 with the argmax, 0.919 / 0.920 and 0.076 / 0.075 with 12 bins (8: 0.917 / 0.916;
        # 24: 0.908 / 0.914, the other surface's mode leaking in; models/tiny/README.md).
        "depth_refine_bins": 12,
        "depth_profile": "synthetic",
        "depth_profiles": {"synthetic": {"kind": "log", "min": scenes.MIN_DEPTH_M, "max": scenes.MAX_DEPTH_M}},
        # `densemllm eval --task depth`: the model was trained image first, and the walls stand at
        # exactly MAX_DEPTH_M, so the valid ground truth must reach past it (evaluate.py DEPTH_VALID).
        "depth_evaluation": {"layout": "image_first", "min_depth": 0.001, "max_depth": 25.0},
        "crop_padding": data.CROP_PAD,
        "crop_short_side": data.CROP_SHORT_SIDE,
        "crop_box_px": data.CROP_BOX_PX,
        # Open-set segmentation detects all objects directly: this model never learnt the demo's
        # category discovery nor detection restricted to a category list.
        "prompts": {"openset": ""},
    }
    with open(path, "w") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")


def write_model_dir(out_dir, cfg, W, document):
    os.makedirs(out_dir, exist_ok=True)
    tm.save_checkpoint(out_dir, cfg, W)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")
    write_profile(os.path.join(out_dir, "readout_profile.json"))


def write_training_record(out_dir, seed, steps, log):
    """training.json: what the model knows (its classes), how it was trained, the loss curve."""
    record = dict(classes=scenes.CLASSES, seed=seed, steps=steps, batch=BATCH, k_negatives=K_NEGATIVES,
                  coord_sigma=COORD_SIGMA, lr=LR, warmup=WARMUP, weight_decay=WEIGHT_DECAY,
                  min_coverage=data.MIN_COVERAGE, crop_short_side=data.CROP_SHORT_SIDE, log=log)
    with open(os.path.join(out_dir, "training.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


def fresh_model(seed):
    """(tokenizer.json document, data.Vocabulary, config, initial parameters) of a new tiny model."""
    document = tm.build_tokenizer_document()
    tok = tm.Tokenizer(document)
    dims = tm.dims_for(tok.size, tok)
    return document, data.Vocabulary(tok), tm.config_for(dims), tm.init_parameters(dims, seed, tok.id("<x_0>"))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=int, default=0, help="also write OUT_DIR/stepN/ every N steps")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("DMLLM_TRAIN_THREADS", "1")))
    torch.manual_seed(args.seed)
    document, vocab, cfg, W = fresh_model(args.seed)
    first_coordinate_id = vocab.first_coordinate
    trainable = [p for name, p in W.items() if not name.endswith("position_embedding.weight")]
    opt = torch.optim.AdamW(trainable, lr=LR, weight_decay=WEIGHT_DECAY)
    samples = SampleStream(args.seed, vocab, args.steps * BATCH)

    log, t0 = [], time.time()
    running = np.zeros(2)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps)
        opt.zero_grad()
        for group in same_size_groups([samples.get() for _ in range(BATCH)]):
            l_ntpm, l_text = batched.loss(W, cfg, group, first_coordinate_id)
            ((l_ntpm + l_text) * (len(group) / BATCH)).backward()
            running += (l_ntpm.item() * len(group) / BATCH, l_text.item() * len(group) / BATCH)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            write_model_dir(os.path.join(args.out_dir, "step%d" % (step + 1)), cfg, W, document)
        if (step + 1) % args.log_every == 0:
            running /= args.log_every
            entry = dict(step=step + 1, ntpm=round(float(running[0]), 4), text=round(float(running[1]), 4),
                         seconds=round(time.time() - t0, 1))
            log.append(entry)
            print(json.dumps(entry), flush=True)
            running[:] = 0

    write_model_dir(args.out_dir, cfg, W, document)
    sample = scenes.make_scene(np.random.default_rng(10_000 + args.seed), size=(256, 320))
    Image.fromarray(sample.image).save(os.path.join(args.out_dir, "sample.png"), optimize=True)
    write_training_record(args.out_dir, args.seed, args.steps, log)



if __name__ == "__main__":
    main(sys.argv[1:])
