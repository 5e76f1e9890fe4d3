#!/usr/bin/python3
"""Write the adversarial strings of the tokenizer parity test (tests/fixtures/tokenizer/strings.json):
hand-picked edge cases plus deterministic random mixtures of hard pieces (whitespace runs, CRLF,
contractions, digit runs, CJK / Korean / Japanese, emoji ZWJ sequences, combining marks, added
tokens glued to text)."""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "tokenizer", "strings.json")

HAND = [
    "", " ", "  ", "\n", "\r\n", "\t", " \n ", "a", "Hello world", "Hello  world", "Hello   world  ",
    "   leading", "trailing   ", "line1\nline2", "line1\r\nline2\r\n", "tabs\tand\tmore\t\t",
    "don't can't won't I'm you're he's she'll they'd we've", "DON'T CAN'T I'M YOU'RE", "O'Neil's",
    "12345", "3.14159", "1,000,000", "2026-11-22", "v1.2.3", "x=1+2*3/4", "a1b2c3", "１２３",
    "今天天气很好", "今天 天气 很好。", "你好，世界！", "日本語のテキスト、カタカナ、ひらがな", "한국어 문장입니다.",
    "ㄱㄴㄷ ㅏㅑ", "ㄅㄆㄇ", "（全角括号）", "「引用」", "…—“”‘’", "︰﹏",
    "😀", "👍🏽", "👩‍💻", "🇫🇷🇩🇪", "❤️", "a😀b", "😀😀😀", "e\u0301", "n\u0303o", "\u0301\u0301",
    "Tiếng Việt", "नमस्ते", "مرحبا", "Москва", "Straße", "ÅÄÖ åäö", "ǅungla", "ＡＢＣ",
    "<|begin_of_text|>", "<|image_pad|><|image_pad|>", "text<|end_of_text|>more", "<|vision_start|><|image_pad|><|vision_end|>",
    "<FG>", "x<BG>y", "<ref>red circle</ref>", "<custom_1><custom_2>", "<custom_12>", "< FG >", "<|image_pad",
    "<|begin_of_text|>system\nYou are a helpful assistant.<|end_of_text|>\n<|begin_of_text|>user\n",
    "https://example.com/a?b=c&d=e", "user@example.org", "C:\\path\\to\\file", "/usr/bin/python3",
    "def f(x):\n    return x**2\n", "if (a && b || !c) { x++; }", "#include <stdio.h>", "// comment\n/* block */",
    "   \n\n   \n", "\n\n\n", " \r\n \r\n", "a\u00a0b", "a\u3000b", "a\u2003b", "a\u0085b", "\u200bzero\u200bwidth",
    "mixedCASEWords", "ALLCAPS", "camelCaseName", "snake_case_name", "kebab-case-name", "SCREAMING_SNAKE",
    "...", "!!!", "?!?!", "---", "___", "~~~", "''", "\"\"", "'s", "'S", " 's", "'ll'", "l'heure", "rock'n'roll",
]

PIECES = ["the", "The", " red", " circle", "sky", "grass", " ", "  ", "\t", "\n", "\r\n", "'s", "'LL", "'re",
          "7", "42", "2026", "3.5", "，", "。", "天空", "草地", "カメラ", "ひらがな", "한국", "😀", "👩‍💻", "🇫🇷",
          "e\u0301", "é", "ß", "Ω", "ж", "<FG>", "<BG>", "<ref>", "</ref>", "<|image_pad|>", "<custom_7>", "(", ")",
          "[", "]", ".", ",", "!", "?", "-", "_", "/", "\\", "#", "@", "%", "&", "*", "+", "=", ":", ";", "\"", "'"]


def main():
    rng = random.Random(2602)
    strings = list(HAND)
    for _ in range(300):
        strings.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12))))
    for _ in range(20):  # long runs that stress the regex engine
        strings.append(rng.choice([" ", "\n", "a", "7", "天", "!"]) * rng.randint(50, 400))
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(strings, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(len(strings), "strings")


if __name__ == "__main__":
    main()
