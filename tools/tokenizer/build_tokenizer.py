#!/usr/bin/python3
"""Build a Hugging Face tokenizer.json of the Youtu layout (model-spec §5) from a text corpus.

Byte-level BPE over the GPT-2 byte alphabet (all 256 byte symbols are in the base vocabulary),
trained by repeatedly merging the most frequent adjacent pair (ties broken by the pair's text, so
the output is deterministic), written with:
  model         BPE, ignore_merges true, byte_fallback false, merges as [a, b] pairs
  pre_tokenizer Sequence[Split(Youtu CJK regex, Isolated), Split(Youtu word regex, Isolated),
                ByteLevel(add_prefix_space false, use_regex false)]
  decoder       ByteLevel;  normalizer null
  added_tokens  the chat specials (special) and the caller's extra tokens.
Training splits words with an approximation of the Youtu regex (Python's re has no \\p{..}); that
only shapes which merges are learnt. Encoding always follows the regexes written into the file.

    /usr/bin/python3 tools/tokenizer/build_tokenizer.py CORPUS OUT.json [--vocab N]
        [--extra TOKEN ...] [--extra-file FILE]
"""
import argparse
import collections
import json
import re
import sys

# model-spec §5: the two Split stages of the Youtu pre-tokenizer.
YOUTU_CJK = "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+"
YOUTU_WORDS = ("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
               "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
               "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
               "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
               "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")

CHAT_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]

# Training-time word split: CJK runs, letter runs with an optional leading non-letter, single
# digits, punctuation runs, whitespace.
TRAIN_SPLIT = re.compile(r"[\u3040-\u30ff\u4e00-\u9fa5\uac00-\ud7a3]+|[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n/]*|\s+")


def bytes_to_unicode():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def train(corpus, vocab_size):
    """Returns (vocab {piece: id}, merges [(a, b)])."""
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    words = collections.Counter(TRAIN_SPLIT.findall(corpus))
    symbols = {w: [alphabet[b] for b in w.encode("utf-8")] for w in words}
    merges = []
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for w, count in words.items():
            s = symbols[w]
            for i in range(len(s) - 1):
                pairs[(s[i], s[i + 1])] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merged = best[0] + best[1]
        merges.append(best)
        vocab.setdefault(merged, len(vocab))
        for w in words:
            s = symbols[w]
            i, out = 0, []
            while i < len(s):
                if i + 1 < len(s) and s[i] == best[0] and s[i + 1] == best[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            symbols[w] = out
    return vocab, merges


def build(corpus, vocab_size=2000, extra_tokens=(), extra_special=False):
    """The tokenizer.json document as a dict."""
    vocab, merges = train(corpus, vocab_size)
    added = []
    next_id = len(vocab)
    for content in CHAT_SPECIALS:
        added.append(dict(id=next_id, content=content, single_word=False, lstrip=False, rstrip=False,
                          normalized=False, special=True))
        next_id += 1
    for content in extra_tokens:
        added.append(dict(id=next_id, content=content, single_word=False, lstrip=False, rstrip=False,
                          normalized=False, special=extra_special))
        next_id += 1
    split = lambda pattern: {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
                             "invert": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(YOUTU_CJK), split(YOUTU_WORDS),
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": [list(m) for m in merges]},
    }


def write(document, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=2000, help="base vocabulary size (bytes + merges)")
    ap.add_argument("--extra", nargs="*", default=[], help="extra added tokens (not special)")
    ap.add_argument("--extra-file", help="file with one extra added token per line")
    args = ap.parse_args(argv)
    extra = list(args.extra)
    if args.extra_file:
        extra += [line.rstrip("\n") for line in open(args.extra_file, encoding="utf-8") if line.strip()]
    corpus = open(args.corpus, encoding="utf-8").read()
    write(build(corpus, args.vocab, extra), args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
