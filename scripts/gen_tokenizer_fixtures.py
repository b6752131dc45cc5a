#!/usr/bin/env python3
"""Generates tests/fixtures/tokenizer/*.jsonl with the reference Python libraries.

For each tokenizer (qwen3, deepseek_v3, gpt2, llama2):
  cases_<name>.jsonl  one varied text per line: ids (no specials), ids with add_special, the
                      reference decode (with and without skipping special tokens).
  bulk_<name>.jsonl   ~200 GSM8K / MATH records from ../shared/data, referenced by file and line;
                      ids stored as base64 of LEB128 varints (compact).
References: `tokenizers` (Tokenizer.from_file; GPT-2 built as models.BPE from encoder.json +
vocab.bpe with a ByteLevel pre-tokenizer/decoder and <|endoftext|> as a special token, cross-checked
against a plain reimplementation of GPT-2's encoder.py) and `sentencepiece` for llama2.

Run: ~/.cache/mathrl/venv/bin/python scripts/gen_tokenizer_fixtures.py
"""
import base64
import json
import os
import sys

import regex
import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MATHRL_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
TOK = os.path.join(SHARED, "tokenizers")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

TEXTS = [
    "",
    "Hello world",
    "  leading spaces and trailing   ",
    "tabs\tand\ttabs\t\t\n",
    "line1\n\nline2\r\nline3\n\n\n",
    "trailing newline\n",
    " ",
    "\n",
    "$\\frac{a}{b} + \\sqrt{x^2+y^2} = \\int_0^1 f(x)\\,dx$",
    "\\begin{align} x &= 3 \\\\ y &= 4 \\end{align}\n\\boxed{\\dfrac{3}{4}}",
    "def f(x):\n    return x**2  # square\n\n\tpass",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "小明有5个苹果，吃了2个，还剩几个？",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 텍스트",
    "I ❤️ math 🧮🔢 👨‍👩‍👧 ok",
    "12345678901234567890 3.14159 -42 1,000,000 1e-9 0x1F",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|endoftext|>",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>",
    "<｜User｜>hi<｜Assistant｜>",
    "<s>not special in sentencepiece</s>",
    "Cafe\u0301 and e\u0301le\u0300ve, A\u030a",
    "\ufb01 ligature and \u00bd and \u00b2 and \u216b",
    "naïve façade coöperate résumé Ångström",
    "I'm sure it's fine, they'll've gone. DON'T SHOUT'S we'd",
    "a\u00a0b\u2003c\u3000d\u0085e\u2028f",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
    " " * 40 + "x" + "\n" * 10 + "y   \n  ",
    "a" * 300,
    "αβγ δ Привет мир مرحبا",
    "a\u0000b\u0001c\u007f",
    "∑_{i=1}^{n} i² = n(n+1)/2 ≤ ∞ → ∀x∈ℝ",
]

# Decoding arbitrary id sequences (partial UTF-8): decode every prefix of these texts' ids.
PREFIX_TEXTS = ["🧮 and 中文!", "<|im_start|>é"]


def varint_b64(ids):
    out = bytearray()
    for v in ids:
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
    return base64.b64encode(bytes(out)).decode("ascii")


# ---- GPT-2 encoder.py, reimplemented to cross-check the `tokenizers` build ----
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Gpt2Plain:
    def __init__(self, encoder_path, bpe_path):
        self.encoder = json.load(open(encoder_path, encoding="utf-8"))
        lines = open(bpe_path, encoding="utf-8").read().split("\n")[1:-1]
        self.ranks = {tuple(l.split()): i for i, l in enumerate(lines)}
        self.byte_encoder = bytes_to_unicode()
        self.pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(self, token):
        word = list(token)
        while len(word) > 1:
            pairs = [(word[i], word[i + 1]) for i in range(len(word) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        return word

    def encode(self, text):
        ids = []
        for tok in regex.findall(self.pat, text):
            mapped = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids


class HfRef:
    def __init__(self, tok):
        self.tok = tok

    def encode(self, text, add_special=False):
        return self.tok.encode(text, add_special_tokens=add_special).ids

    def decode(self, ids, skip=False):
        return self.tok.decode(ids, skip_special_tokens=skip)


class SpRef:
    def __init__(self, path):
        self.sp = spm.SentencePieceProcessor(model_file=path)

    def encode(self, text, add_special=False):
        return self.sp.encode(text, add_bos=add_special)

    def decode(self, ids, skip=False):
        if skip:
            ids = [i for i in ids if not self.sp.is_control(i)]
        return self.sp.decode(ids)


def gpt2_ref():
    d = os.path.join(TOK, "gpt2")
    bpe = models.BPE.from_file(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    plain = Gpt2Plain(os.path.join(d, "encoder.json"), os.path.join(d, "vocab.bpe"))
    for t in TEXTS + [bulk_text(r) for r in bulk_records()[:50]]:
        if "<|endoftext|>" not in t:
            assert tok.encode(t).ids == plain.encode(t), f"gpt2 references disagree on {t!r}"
    return HfRef(tok)


def bulk_records():
    """(relative file, 0-based line, fields) for 100 GSM8K train + 100 MATH train records."""
    recs = []
    for rel, fields, count in [("gsm8k/train.jsonl", ["question", "answer"], 100),
                               ("math/train.jsonl", ["problem", "solution"], 100)]:
        lines = open(os.path.join(SHARED, "data", rel), encoding="utf-8").read().split("\n")
        lines = [l for l in lines if l.strip()]
        step = len(lines) // count
        for k in range(count):
            n = k * step
            obj = json.loads(lines[n])
            recs.append((rel, n, fields, obj))
    return recs


def bulk_text(rec):
    # Must match tests/tokenizer: the fields joined by "\n".
    _, _, fields, obj = rec
    return "\n".join(obj[f] for f in fields)


SYNTH_TEXTS = TEXTS + [
    "[MASK] and   [MASK]x x[MASK] foo food foo. BAR bar Bar",
    "well-known re-entry 123-456 - -- ---",
    "zebra quixotic JUMPS 9876543210 aeiou xyz",
    "hello hellohello thing things",
    "x_foo foo_ foo\u00a0[MASK]\u3000y \u00e9foo foo\u0301 \u2160foo foo\u00bd",
]


def synth_bytelevel(path):
    """Byte-level BPE exercising what the shared files do not: NFKC+Lowercase, Split behaviours,
    ByteLevel with prefix space + regex, TemplateProcessing, lstrip/rstrip/single_word/normalized
    added tokens, merges in the "a b" string form."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"[.,!?]"), behavior="removed", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([bulk_text(r) for r in bulk_records()[:60]], trainer)
    tok.add_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("foo", single_word=True, normalized=True),
                    AddedToken("BAR", normalized=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return HfRef(Tokenizer.from_file(path))


def synth_fallback(path):
    """Char-level BPE (no byte level) with byte_fallback, unk, ignore_merges, inverted/Contiguous/
    MergedWithNext splits, Bert-style post-processor and no decoder (tokens joined by spaces)."""
    vocab = {"<unk>": 0, "[CLS]": 1, "[SEP]": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in "abcdefghijklmnopqrstuvwxyz0123456789 ":
        vocab[c] = len(vocab)
    merges = [("t", "h"), ("th", "e"), ("i", "n"), ("in", "g"), ("e", "r"), ("h", "e"), ("l", "l"), ("he", "ll"),
              ("hell", "o"), ("1", "2"), ("12", "3")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["thing"] = len(vocab)  # reachable only through ignore_merges
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, ignore_merges=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFD()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"[0-9]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[a-z]+"), behavior="contiguous", invert=True),
    ])
    tok.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    tok.add_special_tokens(["[CLS]", "[SEP]"])
    tok.save(path)
    return HfRef(Tokenizer.from_file(path))


def synth_digits(path):
    """synth_fallback's model behind Punctuation and Digits(individual_digits) pre-tokenizers."""
    synth_fallback(path)
    j = json.load(open(path, encoding="utf-8"))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation", "behavior": "Contiguous"}, {"type": "Digits", "individual_digits": True}]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return HfRef(Tokenizer.from_file(path))


def write_cases(path, ref, texts):
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            ids = ref.encode(text)
            row = {"text": text, "ids": ids, "ids_special": ref.encode(text, True),
                   "decoded": ref.decode(ids), "decoded_skip": ref.decode(ref.encode(text, True), True)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for text in PREFIX_TEXTS:
            ids = ref.encode(text)
            for k in range(1, len(ids) + 1):
                row = {"prefix_of": text, "ids": ids[:k], "decoded": ref.decode(ids[:k])}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build in [("synth_bytelevel", synth_bytelevel), ("synth_fallback", synth_fallback),
                        ("synth_digits", synth_digits)]:
        write_cases(os.path.join(OUT, f"cases_{name}.jsonl"), build(os.path.join(OUT, f"{name}.json")), SYNTH_TEXTS)
    refs = {
        "qwen3": HfRef(Tokenizer.from_file(os.path.join(TOK, "qwen3", "tokenizer.json"))),
        "deepseek_v3": HfRef(Tokenizer.from_file(os.path.join(TOK, "deepseek_v3", "tokenizer.json"))),
        "gpt2": gpt2_ref(),
        "llama2": SpRef(os.path.join(TOK, "llama2", "tokenizer.model")),
    }
    records = bulk_records()
    for name, ref in refs.items():
        write_cases(os.path.join(OUT, f"cases_{name}.jsonl"), ref, TEXTS)
        with open(os.path.join(OUT, f"bulk_{name}.jsonl"), "w", encoding="utf-8") as f:
            for rec in records:
                ids = ref.encode(bulk_text(rec))
                f.write(json.dumps({"file": rec[0], "line": rec[1], "fields": rec[2], "count": len(ids),
                                    "ids": varint_b64(ids)}) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
