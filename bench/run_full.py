#!/usr/bin/python3
"""Full-size benchmark of densemllm against a PyTorch eager bf16 contender, in one run.

1. Makes the random Youtu-VL-4B-shaped checkpoint once (tools/make_checkpoint.py --full, ~10.7 GB,
   kept in the cache directory outside the repository) and a model directory of links to it plus
   the models/tiny tokenizer (the random checkpoint has none; the bench needs one for the prompt).
2. Checks once, on a small checkpoint in float32, that the contender computes what the library
   computes (tests/python/test_bench_contender.py).
3. Measures the machine: bench_peak (register-only AVX-512 / AVX512-BF16 / VNNI / AMX loops,
   streaming read bandwidth).
4. For each image size, alternately runs `densemllm bench` (bf16, and int8 when the CLI has
   `--weights`) and bench/contender.py, each as its own process that loads the weights once, runs
   the dense query --repeat times and decodes --decode tokens; the processes take the full-size
   lock one at a time (two full-size models do not fit in 24 GiB together); `bench_peak --read`
   measures the read bandwidth right before each, the bound its decoding is set against.
5. Writes bench/RESULTS.md: per stage seconds, GFLOP/s, share of the matmul peak, ratio to
   PyTorch, decode tokens/s against the bandwidth bound, load time, peak RSS, CPU and date; its
   last lines are one `summary WxH: ...` line per size for scripts.

    /usr/bin/python3 bench/run_full.py [--sizes 448x448,1024x768,1024x1024] [--repeat 1]
        [--decode 4] [--rounds 1] [--checkpoint DIR] [--lock FILE] [--out bench/RESULTS.md]

The cache directory is $DMLLM_BENCH_CACHE, else ~/.cache/densemllm. Needs a Release build in
build/ (scripts/build.sh) and Debian's python3-torch (scripts/install-deps.sh --torch).
"""
import argparse
import datetime
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
N_LABELS = 5   # single-token classes spread over the vocabulary: the readout is cheap
STAGES = ("encode", "prefill", "readout")


def log(message):
    print("[run_full %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- preparation
def ensure_checkpoint(ckpt, lock):
    """The maker writes a sharded checkpoint's index last: without it (or a single
    model.safetensors) the checkpoint is absent or incomplete."""
    if any(os.path.exists(os.path.join(ckpt, name))
           for name in ("model.safetensors.index.json", "model.safetensors")):
        return
    log("writing the full-size checkpoint to %s (~10.7 GB, several minutes)" % ckpt)
    with locked(lock):
        maker = os.path.join(ROOT, "tools", "make_checkpoint.py")
        subprocess.run([sys.executable, maker, ckpt, "--full"], check=True)


def model_dir(ckpt, cache):
    """Links to the checkpoint's files plus the tiny model's tokenizer.json, in the cache."""
    directory = os.path.join(cache, "bench-model")
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(ckpt):
        link = os.path.join(directory, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(os.path.abspath(ckpt), name), link)
    shutil.copyfile(os.path.join(ROOT, "models", "tiny", "tokenizer.json"),
                    os.path.join(directory, "tokenizer.json"))
    return directory


def prefix_text_ids(lib):
    """The chat text ids before the image block as the library builds its dense prompt (the same
    tokenizer.json as the bench model directory), for the contender's prompt."""
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    os.environ["DMLLM_LIB"] = lib
    import densemllm
    with densemllm.Model(os.path.join(ROOT, "models", "tiny")) as model:
        ids = list(model.chat_tokenize([{"role": "user", "text": "", "has_image": True}],
                                       add_generation_prompt=False))
        return [int(i) for i in ids[:ids.index(model.token_id("<|vision_start|>"))]]


class locked:
    """flock(1) on the full-size lock for the duration of a with-block."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def run_measured(command, lock):
    """Runs command under the lock; (its stdout parsed as the last JSON line, {"rss": peak RSS in
    bytes, "cores": CPU seconds per wall second of the process, i.e. how much of the machine it
    got while other work ran})."""
    with locked(lock):
        log(" ".join(command))
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError("%s failed with exit code %d" % (command[0], proc.returncode))
    process = {"rss": usage.ru_maxrss * 1024, "cores": (usage.ru_utime + usage.ru_stime) / wall}
    return json.loads(out.strip().splitlines()[-1]), process


# ----------------------------------------------------------------------------- work counts
def label_ids(cfg):
    return [cfg["vocab_size"] * (k + 1) // (N_LABELS + 1) for k in range(N_LABELS)]


def flop_counts(cfg, width, height, n_text):
    """FLOP of each stage of the dense query at WxH (2 per multiply-add; attention counted once
    per causal pair, as the library's work, not as the masked square the contender computes)."""
    v = cfg["vision_config"]
    patch, merge = v["patch_size"], v["spatial_merge_size"]
    gh, gw = height // patch, width // patch
    n_patches, d, inter = gh * gw, v["hidden_size"], v["intermediate_size"]
    ws = v["window_size"] // merge // patch                    # window side in merged tokens
    windows = []
    hm, wm = gh // merge, gw // merge
    for r in range(0, hm, ws):
        for c in range(0, wm, ws):
            windows.append(4 * min(ws, hm - r) * min(ws, wm - c))
    encode = 2 * n_patches * 3 * patch * patch * d
    for layer in range(v["num_hidden_layers"]):
        segments = [n_patches] if layer in v["fullatt_block_indexes"] else windows
        encode += 2 * n_patches * (4 * d * d + 2 * d * inter) + sum(4 * s * s * d for s in segments)
    n_img = n_patches // 4
    dt = cfg["hidden_size"]
    encode += 2 * n_img * (4 * d * 4 * d + 4 * d * dt)
    t = n_text + n_img + 2
    per_token, attn_dims = llm_linear_flop(cfg)
    prefill = t * per_token + cfg["num_hidden_layers"] * attn_dims * t * (t + 1) // 2
    readout = 2 * n_img * N_LABELS * dt
    decode = per_token + 2 * dt * cfg["vocab_size"] + cfg["num_hidden_layers"] * attn_dims * t
    return {"encode": encode, "prefill": prefill, "readout": readout, "decode_token": decode,
            "tokens": t}


def llm_linear_flop(cfg):
    """(linear FLOP of one token through all layers, attention FLOP per (query, key) pair and
    layer)."""
    dt, h = cfg["hidden_size"], cfg["num_attention_heads"]
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    vd, kvl, ql = cfg["v_head_dim"], cfg["kv_lora_rank"], cfg["q_lora_rank"]
    layer = (dt * ql + ql * h * qk + dt * (kvl + cfg["qk_rope_head_dim"])
             + kvl * h * (cfg["qk_nope_head_dim"] + vd) + h * vd * dt
             + 3 * dt * cfg["intermediate_size"])
    return 2 * layer * cfg["num_hidden_layers"], 2 * h * (qk + vd)


def decode_bytes(cfg, int8):
    """Weight bytes one decode step reads: every LLM layer's matrices and the tied head, in bf16;
    with int8 weights the layers' matrices at 1 byte, but the head and the absorbed per-head
    projections (kv_b_proj's weights, split by head) stay bf16 (lib/llm.c)."""
    per_token, _ = llm_linear_flop(cfg)
    layers = per_token // 2
    head = cfg["hidden_size"] * cfg["vocab_size"]
    if not int8:
        return 2 * (layers + head)
    kv_b = (cfg["num_hidden_layers"] * cfg["kv_lora_rank"] * cfg["num_attention_heads"]
            * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]))
    return (layers - kv_b) + 2 * (kv_b + head)


# ----------------------------------------------------------------------------- the runs
def run_library(args, model, size, labels, weights):
    command = [os.path.join(args.build, "densemllm"), "bench", "--model", model, "--size", size,
               "--label-ids", ",".join(map(str, labels)), "--repeat", str(args.repeat),
               "--decode", str(args.decode), "--json", "--quiet"]
    if weights:
        command += ["--weights", weights]
    result, process = run_measured(command, args.lock)
    run = result["runs"][0]
    queries = [{"seconds": run["first_query"]["seconds"],
                **{s: run["first_query"]["seconds_" + s] for s in STAGES}}]
    decode = run.get("decode") or {}
    return {"load": run["seconds_load"], **process, "queries": queries, "compute": run["compute"],
            "tokens_per_second": decode.get("tokens_per_second")}


def run_torch(args, model, size, text_ids, labels):
    command = [sys.executable, os.path.join(ROOT, "bench", "contender.py"), "--model", model,
               "--text-ids", ",".join(map(str, text_ids)),
               "--label-ids", ",".join(map(str, labels)),
               "--sizes", size, "--repeat", str(args.repeat), "--decode", str(args.decode)]
    result, process = run_measured(command, args.lock)
    entry = result["sizes"][0]
    return {"load": result["seconds_load"], **process, "queries": entry["queries"],
            "torch": result["torch"], "tokens": entry["tokens"],
            "tokens_per_second": (entry.get("decode") or {}).get("tokens_per_second")}


def read_bandwidth(args):
    """GB/s of bench_peak's streaming read, now."""
    out = subprocess.run([os.path.join(args.build, "bench_peak"), "--json", "--read"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["read_gbytes_per_s"]


def cli_has_int8(build):
    help_text = subprocess.run([os.path.join(build, "densemllm"), "bench", "--help"],
                               capture_output=True, text=True).stdout
    return "--weights" in help_text


def merge_runs(runs):
    """Median of each figure over the rounds (queries: over every repetition of every round)."""
    if not runs:
        return None
    queries = [q for r in runs for q in r["queries"]]
    merged = {k: statistics.median(q[k] for q in queries) for k in ("seconds",) + STAGES}
    merged["load"] = statistics.median(r["load"] for r in runs)
    merged["rss"] = max(r["rss"] for r in runs)
    merged["cores"] = statistics.median(r["cores"] for r in runs)
    rates = [r["tokens_per_second"] for r in runs if r.get("tokens_per_second")]
    merged["tokens_per_second"] = statistics.median(rates) if rates else None
    shares = [r["tokens_per_second"] / r["decode_bound"] for r in runs
              if r.get("tokens_per_second") and r.get("decode_bound")]
    merged["decode_shares"] = sorted(shares) or None
    return merged


# ----------------------------------------------------------------------------- the report
def cpu_description():
    name, flags = platform.processor() or "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    known = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
    isa = [f for f in known if f in flags]
    amx = "AMX" if "amx_tile" in flags else "no AMX"
    return "%s, %d logical cores, %s (%s)" % (name, os.cpu_count(), amx, " ".join(isa))


def fmt(value, spec="%.2f", none="n/a"):
    return none if value is None else spec % value


def header(raw, bf16_peak, peak_name):
    """The lines before the per-size tables: machine, run, contender, peaks."""
    peaks = raw["peaks"]
    started = datetime.datetime.fromisoformat(raw["started"])
    torch_runs = [r for size in raw["sizes"] for r in raw["runs"][size]["torch"]]
    git = ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "?"
    rate = [("AVX-512 FMA f32", "avx512_fma_f32_gflops", "GFLOP/s"),
            ("AVX512-BF16 vdpbf16ps", "avx512_bf16_gflops", "GFLOP/s"),
            ("AVX512-VNNI vpdpbusd", "avx512_vnni_gops", "GOP/s"),
            ("AMX tdpbf16ps", "amx_bf16_gflops", "GFLOP/s"),
            ("AMX tdpbssd", "amx_int8_gops", "GOP/s"),
            ("streaming read", "read_gbytes_per_s", "GB/s")]
    return [
        "# Full-size benchmark: densemllm against PyTorch eager bf16", "",
        "Written by `bench/run_full.py` (see bench/README.md); do not edit by hand.", "",
        "- CPU: %s" % cpu_description(),
        "- date: %s UTC (the run took %.0f s), commit %s, load average at the start %s"
        % (started.strftime("%Y-%m-%d %H:%M"), raw["seconds"], commit,
           " ".join("%.1f" % x for x in raw["loadavg"])),
        "- checkpoint: random bf16 weights at the Youtu-VL-4B shapes (%s), tokenizer of models/tiny"
        % raw["checkpoint"],
        "- dense query: %d chat text ids + the image block, %d single-token labels; the first "
        "query of `densemllm bench` (encode + prefill + readout, no CRF); medians of %d "
        "repetition(s) x %d round(s)"
        % (len(raw["text_ids"]), N_LABELS, raw["repeat"], raw["rounds"]),
        "- contender: bench/contender.py, PyTorch %s eager, bf16 weights and activations, "
        "%d threads" % (torch_runs[0]["torch"] if torch_runs else "?", os.cpu_count()),
        "- contender check (float32, small checkpoint, tests/python/test_bench_contender.py): %s"
        % raw["check"],
        ] + missing_runs(raw) + [
        "", "## Machine peaks (bench_peak, %d threads)" % peaks["threads"], "",
        "| loop | rate |", "|---|---|"] + [
        "| %s | %s |" % (name, fmt(peaks[key], "%.1f " + unit)) for name, key, unit in rate] + [
        "",
        "Peaks are per thread over its own CPU time, added up (the cores are shared with other "
        "work). \"% peak\" below is against the bf16 matmul peak (" + peak_name + ", "
        "%.0f GFLOP/s); FLOP are the model's (attention counted once per causal pair)."
        % (bf16_peak * 1e-9), ""]


def missing_runs(raw):
    """A line naming the runs an interrupted measurement lacks (none when complete)."""
    missing = ["%s %s" % (side, size) for size in raw["sizes"]
               for side in ["densemllm"]
               + (["torch"] if size in raw.get("torch_sizes", raw["sizes"]) else [])
               + (["int8"] if raw["int8"] else [])
               if len(raw["runs"][size][side]) < raw["rounds"]]
    return ["- INCOMPLETE, not measured (n/a below): " + ", ".join(missing)] if missing else []


def size_section(raw, size, r, bf16_peak):
    """(the tables of one size, its summary line)."""
    cfg, bandwidth = raw["cfg"], raw["peaks"]["read_gbytes_per_s"] * 1e9
    width, height = (int(v) for v in size.split("x"))
    dm, tc, i8 = r["densemllm"], r["torch"], r.get("int8")
    flop = flop_counts(cfg, width, height, len(raw["text_ids"]))
    flop["seconds"] = sum(flop[s] for s in STAGES)

    def cells(m, stage):
        if m is None:
            return ["n/a", "n/a", "n/a"]
        rate = flop[stage] / m[stage]
        return ["%.3f" % m[stage], "%.1f" % (rate * 1e-9), "%.1f" % (100 * rate / bf16_peak)]
    lines = ["## %s (%d image tokens, %d prompt tokens)"
             % (size, (width // 32) * (height // 32), flop["tokens"]), "",
             "| stage | GFLOP | densemllm bf16 s | GFLOP/s | % peak | densemllm int8 s | "
             "PyTorch bf16 s | GFLOP/s | % peak | PyTorch / densemllm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for stage in STAGES + ("seconds",):
        row = (["query" if stage == "seconds" else stage, "%.1f" % (flop[stage] * 1e-9)]
               + cells(dm, stage) + [fmt(i8 and i8[stage], "%.3f")] + cells(tc, stage)
               + [fmt(tc and dm and tc[stage] / dm[stage], "%.2f x")])
        lines.append("| " + " | ".join(row) + " |")

    def decode_cell(m, int8):
        if m is None or not m["tokens_per_second"]:
            return "n/a"
        shares = m.get("decode_shares")
        if shares:      # each run against the bandwidth measured just before it
            return "%.3f (%.0f%%, %.0f-%.0f%%)" % (m["tokens_per_second"],
                                                   100 * statistics.median(shares),
                                                   100 * shares[0], 100 * shares[-1])
        bound = bandwidth / decode_bytes(cfg, int8)
        return "%.3f (%.0f%% of %.2f)" % (m["tokens_per_second"],
                                          100 * m["tokens_per_second"] / bound, bound)

    def row(name, key, spec, scale=1.0):
        values = [fmt(m and m[key] * scale, spec) for m in (dm, i8, tc)]
        return "| %s | %s |" % (name, " | ".join(values))
    lines += ["", "| | densemllm bf16 | densemllm int8 | PyTorch bf16 |", "|---|---|---|---|",
              "| decode tok/s (%d tokens, %.1f GFLOP each), %% of the bound (median, range) | %s | %s | %s |"
              % (raw["decode"], flop["decode_token"] * 1e-9, decode_cell(dm, False), decode_cell(i8, True),
                 decode_cell(tc, False)),
              row("load s (weights + session)", "load", "%.1f"),
              row("peak RSS GiB", "rss", "%.2f", 1.0 / 2**30),
              row("cores it got (CPU s / wall s of the process, of %d)" % os.cpu_count(), "cores",
                  "%.2f"), ""]
    matmul = flop["encode"] + flop["prefill"]
    peak_share = dm and 100 * matmul / (dm["encode"] + dm["prefill"]) / bf16_peak
    ratio = tc and dm and tc["seconds"] / dm["seconds"]
    summary = ("summary %s: densemllm bf16 %s, int8 %s, PyTorch bf16 %s, ratio %s, matmul peak %s"
               % (size, fmt(dm and dm["seconds"], "%.3f s"), fmt(i8 and i8["seconds"], "%.3f s"),
                  fmt(tc and tc["seconds"], "%.3f s"), fmt(ratio, "%.2f x"),
                  fmt(peak_share, "%.1f %%")))
    return lines, summary


def write_results(raw, results, out):
    peaks, cfg = raw["peaks"], raw["cfg"]
    bf16_peak = (peaks["amx_bf16_gflops"] or peaks["avx512_bf16_gflops"]) * 1e9
    peak_name = "AMX tdpbf16ps" if peaks["amx_bf16_gflops"] else "AVX512-BF16 vdpbf16ps"
    lines, summaries = header(raw, bf16_peak, peak_name), []
    for size in raw["sizes"]:
        section, summary = size_section(raw, size, results[size], bf16_peak)
        lines += section
        summaries.append(summary)
    int8 = ("`densemllm bench --weights int8`" if raw["int8"]
            else "n/a: this build's CLI has no `--weights`")
    lines += ["The decode bound is the streaming read bandwidth (`bench_peak --read`, measured "
              "right before each run: the host's bandwidth drifts) over the weight bytes of one step "
              "(the LLM layers and the tied head: %.2f GB in bf16; %.2f GB with int8 weights, whose "
              "head and per-head MLA projections stay bf16); the table gives the median share over "
              "the rounds and its range. int8 is %s."
              % (decode_bytes(cfg, False) * 1e-9, decode_bytes(cfg, True) * 1e-9, int8), ""]
    text = "\n".join(lines + summaries) + "\n"
    with open(out, "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    cache = (os.environ.get("DMLLM_BENCH_CACHE")
             or os.path.join(os.path.expanduser("~"), ".cache", "densemllm"))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="448x448,1024x768,1024x1024", help="comma-separated WxH")
    ap.add_argument("--repeat", type=int, default=1, help="dense queries per process (median)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="times each size is run on each side, alternating")
    ap.add_argument("--decode", type=int, default=4, help="greedy steps after the query (>= 1)")
    ap.add_argument("--checkpoint", default=os.path.join(cache, "full-ckpt"),
                    help="full-size checkpoint, made here when absent (default: CACHE/full-ckpt)")
    ap.add_argument("--cache", default=cache, help="directory of the bench model and the lock")
    ap.add_argument("--lock", default=None,
                    help="lock file of full-size runs (default: CACHE/fullsize.lock)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="build directory")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--torch-sizes", default=None,
                    help="sizes of those for which the contender runs too (default: all)")
    ap.add_argument("--resume", action="store_true",
                    help="go on with the last run (CACHE/bench-runs.json[.partial]), e.g. with "
                         "more --torch-sizes: what it measured is kept, its peaks and check too")
    ap.add_argument("--report-only", action="store_true",
                    help="write --out again from the last run's measurements "
                         "(CACHE/bench-runs.json[.partial])")
    args = ap.parse_args(argv)
    sizes = args.sizes.split(",")
    for size in sizes:
        parts = size.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) % 32 == 0 and int(p) > 0
                                      for p in parts):
            ap.error("--sizes %s: W and H must be multiples of 32 (which the size rule keeps)"
                     % size)
    if args.repeat < 1 or args.rounds < 1 or args.decode < 1:
        ap.error("--repeat, --rounds and --decode must be >= 1")
    os.makedirs(args.cache, exist_ok=True)
    args.lock = args.lock or os.path.join(args.cache, "fullsize.lock")
    raw_path = os.path.join(args.cache, "bench-runs.json")
    previous = [p for p in (raw_path + ".partial", raw_path) if os.path.exists(p)]
    if args.report_only:
        with open(previous[0]) as f:
            report(json.load(f), args.out)
        return 0
    lib = os.path.join(args.build, "libdensemllm.so")
    ensure_checkpoint(args.checkpoint, args.lock)
    model = model_dir(args.checkpoint, args.cache)
    with open(os.path.join(args.checkpoint, "config.json")) as f:
        cfg = json.load(f)
    raw = None
    if args.resume and previous:
        with open(previous[0]) as f:
            raw = json.load(f)
        log("resuming the run of %s" % raw["started"])
    else:
        raw = prepare(args, cfg, lib)
    torch_sizes = (sizes if args.torch_sizes is None
                   else [s for s in args.torch_sizes.split(",") if s])
    raw.update(sizes=sizes, torch_sizes=torch_sizes, repeat=args.repeat, rounds=args.rounds,
               decode=args.decode, checkpoint=args.checkpoint)
    for size in sizes:
        raw["runs"].setdefault(size, {"densemllm": [], "torch": [], "int8": []})
    for round_index in range(args.rounds):
        for size_index, size in enumerate(sizes):
            sides = (["densemllm"] + (["torch"] if size in torch_sizes else [])
                     + (["int8"] if raw["int8"] else []))
            if (round_index + size_index) % 2:
                sides.reverse()     # alternate which side runs first
            for side in sides:
                if len(raw["runs"][size][side]) > round_index:
                    continue        # measured before --resume
                # The host's memory bandwidth drifts (32-52 GB/s within an hour here), so each
                # run's decode is set against the bandwidth measured just before it.
                bandwidth = read_bandwidth(args)
                if side == "torch":
                    result = run_torch(args, model, size, raw["text_ids"], label_ids(cfg))
                else:
                    weights = "int8" if side == "int8" else None
                    result = run_library(args, model, size, label_ids(cfg), weights)
                result["read_gbytes_per_s"] = bandwidth
                result["decode_bound"] = bandwidth * 1e9 / decode_bytes(cfg, side == "int8")
                raw["runs"][size][side].append(result)
                raw["seconds"] = time.time() - datetime.datetime.fromisoformat(
                    raw["started"]).timestamp()
                with open(raw_path + ".partial", "w") as f:
                    f.write(json.dumps(raw))
                log("%s %s: query %.3f s, load %.1f s"
                    % (side, size, result["queries"][0]["seconds"], result["load"]))
    # Every measurement, so that --report-only can write the report again without re-running.
    os.replace(raw_path + ".partial", raw_path)
    report(raw, args.out)
    return 0 if raw["check"].startswith("passed") else 1


def prepare(args, cfg, lib):
    """The measurements every run starts with: the contender check, the machine's peaks."""
    started = datetime.datetime.now(datetime.timezone.utc)
    raw = dict(cfg=cfg, started=started.isoformat(), loadavg=os.getloadavg(), seconds=0.0,
               text_ids=prefix_text_ids(lib), int8=cli_has_int8(args.build), runs={})
    log("contender check on a small checkpoint (float32)")
    check = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            os.path.join(ROOT, "tests", "python", "test_bench_contender.py")],
                           env={**os.environ, "DMLLM_LIB": lib}, capture_output=True, text=True)
    check_line = (check.stdout.strip().splitlines() or ["no output"])[-1]
    raw["check"] = ("passed (%s)" if check.returncode == 0 else "FAILED (%s)") % check_line
    log("contender check: " + raw["check"])
    log("machine peaks")
    raw["peaks"] = json.loads(subprocess.run([os.path.join(args.build, "bench_peak"), "--json"],
                                             check=True, capture_output=True, text=True).stdout)
    return raw


def report(raw, out):
    sizes = raw["sizes"]
    results = {size: {side: merge_runs(r) for side, r in raw["runs"][size].items()}
               for size in sizes}
    write_results(raw, results, out)
    log("wrote " + out)
    with open(out) as f:
        print(f.read())


if __name__ == "__main__":
    sys.exit(main())
