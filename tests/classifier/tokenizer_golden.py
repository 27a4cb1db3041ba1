"""Write host/src/routing/wordpiece_golden.json: the reference tokenizer's ids (Hugging Face
`tokenizers`, all-MiniLM-L6-v2's tokenizer.json, no special tokens, no padding) for texts that
exercise every rule of BERT's normaliser and pre-tokeniser. The gateway's own WordPiece must
give the same ids (`routing::wordpiece` tests).

    python tests/classifier/tokenizer_golden.py [target/classifier]
"""

import json
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = [
    "Hello, World!", "Write a Python function that reverses a linked list",
    "¿Cuál es la diferencia entre un resfriado y la gripe?", "Écris un poème sur la mer, s'il te plaît",
    "Löse die Gleichung 3x + 5 = 20 für x", "用Python写一个函数", "関数を書いてください。", "Напиши функцию на Python",
    "unaffable antidisestablishmentarianism", "C++ & C# -> 100% [done] {ok} `code`", "naïve café — “quoted” … ‘single’",
    "emoji 😀 and \u200b zero width\tand tabs\nnew lines", "x^2 + y^2 = z^2; ∫ f(x) dx ≤ √2", "ПРИВЕТ Straße ÆØÅ œuvre",
    "a" * 120, "https://example.com/path?q=1&r=2", "don't won't I'm you're", "ÀÉÎÕÜ àéîõü ñ ç", "Ελληνικά κείμενα",
    "한국어 문장입니다",
]

if __name__ == "__main__":
    cache = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "classifier")
    tok = Tokenizer.from_file(os.path.join(cache, "minilm", "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    out = [{"text": s, "ids": tok.encode(s, add_special_tokens=False).ids} for s in CASES]
    with open(os.path.join(ROOT, "host", "src", "routing", "wordpiece_golden.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(len(out), "cases")
