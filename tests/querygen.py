"""Search queries drawn from a corpus's own decoded text, for comparing ftsd with tests/reference.py.

``generate_queries(ref, seed, n)`` returns ``n`` (category, AST) pairs, deterministic for a given seed and
corpus. Every category of ``CATEGORIES`` gets at least one query; words come from the reference's normalised
field texts (so they are what a substring search can find), accented forms from the raw decoded text.

    python -m tests.querygen [MAILDIR] [--seed N] [-n N] [--list]   # category histogram (and the queries)
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ftsd.query import And, Key, Node, Not, Or, format_query
from tests.reference import FIELDS, LONG_RUN_LIMIT, ReferenceIndex, normalise

# category -> relative weight (quotas are scaled to n, at least one query each)
CATEGORIES: dict[str, int] = {
    "rare_word": 16,  # a word found in 1-3 messages
    "common_word": 12,  # a word found in 5-60% of the messages
    "infix": 16,  # 3..20 characters cut from inside a word
    "short": 8,  # 1-2 letters
    "long": 8,  # more than 20 characters of a long word (up to the 64-character limit)
    "phrase": 14,  # two adjacent words
    "phrase_punct": 8,  # 2-4 adjacent chunks with punctuation, cut inside the first and last: "l me at bob@ex"
    "accented": 6,  # a word with accents, as written
    "unaccented": 6,  # the same word without its accents
    "upper": 6,  # an (accented) word upper-cased
    "subject": 12,
    "from_word": 8,  # a display-name word
    "from_domain": 6,  # part of an address: "taint.org"
    "from_address": 6,  # a whole address
    "to": 8,
    "cc": 6,
    "bcc": 2,
    "header_common": 10,  # HEADER on X-Mailer, List-Id, ...
    "header_rare": 6,  # HEADER on a header few messages have
    "punct": 12,  # "e-mail", an address, a dotted domain
    "body": 8,  # a word of header lines in some messages, of bodies in others: BODY ...
    "text": 8,  # ... and the same word with TEXT
    "and": 8,  # two keys of one message
    "or": 10,
    "not": 8,
    "and_not": 10,
    "not_or": 8,  # an OR nested inside a NOT
    "nomatch": 6,
    "empty": 3,  # "" matches every message (HEADER name "": those that have the header)
    "symbols": 8,  # no letter or digit: "#", "--", " - ", a run of punctuation from the text
}

_LETTERS = r"[^\W\d_]"
_WORD_RE = re.compile(rf"{_LETTERS}{{3,30}}")  # alphabetic words (inside a longer \w run too: substring search)
_TOKEN_RE = re.compile(r"\w+")
_PHRASE_RE = re.compile(rf"(?<!\w){_LETTERS}{{2,20}} {_LETTERS}{{2,20}}(?!\w)")
_ADDRESS_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DOMAIN_RE = re.compile(r"(?<![\w.@-])[a-z][\w-]*(?:\.[\w-]+)*\.(?:com|org|net|edu|ie|uk|de|fr)(?![\w-])")
_HYPHEN_RE = re.compile(rf"(?<![\w-]){_LETTERS}{{1,15}}(?:-{_LETTERS}{{1,15}})+(?![\w-])")
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")  # what ftsd.query.Key accepts (lower-case)
_COMMON_HEADERS = (
    "x-mailer",
    "list-id",
    "user-agent",
    "x-mailing-list",
    "list-unsubscribe",
    "errors-to",
    "precedence",
    "message-id",
    "content-type",
    "received",
    "x-spam-status",
    "organization",
)
_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_SYMBOL_RUN_RE = re.compile(r"[^\w\s](?:\W*[^\w\s])?")  # punctuation, inner spaces kept
_COMMON_SYMBOLS = ("#", "--", "@", "...", "!", "?", "$", "%", "&", "*", "=", "|", "~", ">>", "://", "-->", " - ",
                   ", ", ": ", "()", "'", "/")


def _plausible_accented(word: str) -> bool:
    """A Latin word with a few accented letters and a sane case pattern ("Fahrländer", "DÉCONFIGURÉE").

    Filters out the mojibake that CJK text in a wrong or missing charset label decodes to ("AÅý", "ÔÚÉÇ").
    """
    if not (3 <= len(word) <= 30 and word.isalpha() and (word.islower() or word.isupper() or word.istitle())):
        return False
    if any(not ("a" <= ch.lower() <= "z" or "\u00c0" <= ch <= "\u017f") or ch in "\u00d7\u00f7" for ch in word):
        return False
    return 0 < sum(not ch.isascii() for ch in word) <= len(word) // 3


@dataclass
class _Corpus:
    """Views of the reference's decoded messages, computed once."""

    ref: ReferenceIndex
    rng: random.Random
    lookups: list[dict[str, str]] = field(init=False)
    body_words: list[str] = field(default_factory=list)  # drawn for BODY, reused for TEXT

    def __post_init__(self) -> None:
        self.lookups = [r.lookup for r in self.ref.records()]

    # --- counts ---------------------------------------------------------------------------------------------

    def count(self, fld: str, value: str, header: str | None = None) -> int:
        """Messages whose field contains the (normalised) value: what a single Key would match."""
        needle = normalise(value)
        name = f"header:{header}" if fld == "header" else fld
        return sum(1 for lk in self.lookups if needle in lk.get(name, "\0"))

    @cached_property
    def word_df(self) -> Counter[str]:
        """Alphabetic words -> number of messages whose TEXT has them as a word."""
        df: Counter[str] = Counter()
        for lk in self.lookups:
            df.update(set(_WORD_RE.findall(lk["text"])))
        return df

    @cached_property
    def vocab(self) -> list[str]:
        return sorted(self.word_df)

    @cached_property
    def header_df(self) -> Counter[str]:
        df: Counter[str] = Counter()
        for lk in self.lookups:
            df.update(k[7:] for k in lk if k.startswith("header:") and _HEADER_NAME_RE.fullmatch(k[7:]))
        return df

    @cached_property
    def accented(self) -> list[str]:
        """Raw decoded words with accents that look like real Latin-script words, not mojibake."""
        words: set[str] = set()
        for rec in self.ref.records():
            words.update(w for w in rec.decoded.accented if _plausible_accented(w))
        return sorted(words)

    # --- drawing --------------------------------------------------------------------------------------------

    def pick_message(self, need: str) -> dict[str, str]:
        """A random message whose field `need` is non-empty (an empty mapping if none has it)."""
        for _ in range(20):
            lk = self.rng.choice(self.lookups)
            if lk.get(need, "").strip():
                return lk
        having = [lk for lk in self.lookups if lk.get(need, "").strip()]
        return self.rng.choice(having) if having else dict.fromkeys((need, *FIELDS), "")

    def word_of(self, text: str, minlen: int = 3) -> str | None:
        words = sorted({w for w in _WORD_RE.findall(text) if len(w) >= minlen})
        return self.rng.choice(words) if words else None

    def words_with_df(self, lo: int, hi: int, minlen: int = 3) -> list[str]:
        return [w for w in self.vocab if lo <= self.word_df[w] <= hi and len(w) >= minlen]

    @cached_property
    def rare_words(self) -> list[str]:
        return self.words_with_df(1, 3, minlen=6)

    @cached_property
    def common_words(self) -> list[str]:
        n = len(self.lookups)
        return self.words_with_df(max(2, n // 20), max(3, n * 6 // 10), minlen=4)

    @cached_property
    def mid_words(self) -> list[str]:
        return self.words_with_df(4, max(5, len(self.lookups) // 20), minlen=4)

    def rare(self) -> str:
        """A word whose substring search (TEXT) matches 1-3 messages."""
        for _ in range(50):
            w = self.rng.choice(self.rare_words or self.vocab)
            if 1 <= self.count("text", w) <= 3:
                return w
        return w

    def common(self) -> str:
        return self.rng.choice(self.common_words or self.vocab)

    def mid(self) -> str:
        return self.rng.choice(self.mid_words or self.vocab)

    def key(self) -> Key:
        """A random simple key for the boolean categories."""
        fld = self.rng.choice(("text", "text", "body", "subject", "from"))
        if fld in ("subject", "from"):
            w = self.word_of(self.pick_message(fld)[fld])
            if w:
                return Key(fld, w)
        return Key(fld, self.rng.choice((self.mid, self.common, self.rare))())


# --- one generator per category: each returns one AST (or None to retry) --------------------------------------

_Gen = Callable[[_Corpus], Node | None]


def _text(value: str) -> Key:
    return Key("text", value)


def _infix(c: _Corpus) -> Node | None:
    w = c.rng.choice([w for w in c.mid_words if len(w) >= 7] or c.vocab)
    if len(w) < 5:
        return None
    length = c.rng.randint(3, min(20, len(w) - 2))
    start = c.rng.randint(1, len(w) - 1 - length)
    return _text(w[start : start + length])


def _short(c: _Corpus) -> Node | None:
    w = c.rng.choice(c.vocab)
    start = c.rng.randrange(len(w) - 1)
    return _text(w[start : start + c.rng.choice((1, 2))])


def _long(c: _Corpus) -> Node | None:
    text = c.pick_message("text")["text"]
    runs = sorted({t for t in _TOKEN_RE.findall(text) if 21 <= len(t) <= LONG_RUN_LIMIT and t.strip("_")})
    if not runs:
        return None
    w = c.rng.choice(runs)
    if c.rng.random() < 0.3:  # whole run: up to exactly the limit
        return _text(w)
    length = c.rng.randint(21, len(w))
    start = c.rng.randint(0, len(w) - length)
    return _text(w[start : start + length])


def _phrase(c: _Corpus) -> Node | None:
    body = c.pick_message("body")["body"]
    at = c.rng.randrange(max(1, len(body)))
    m = _PHRASE_RE.search(body, at) or _PHRASE_RE.search(body)
    return Key(c.rng.choice(("text", "body")), m.group()) if m else None


def _phrase_punct(c: _Corpus) -> Node | None:
    """A slice of 2-4 adjacent whitespace-delimited chunks of a body or TEXT, at least one with punctuation,
    cut inside the first and the last (phrase queries must match chunk ends and starts, not whole words)."""
    fld = c.rng.choice(("text", "body"))
    chunks = c.pick_message(fld)[fld].split(" ")
    if len(chunks) < 2:
        return None
    n = c.rng.randint(2, min(4, len(chunks)))
    at = c.rng.randrange(len(chunks) - n + 1)
    picked = chunks[at : at + n]
    if not all(picked) or not any(re.search(r"[^\w]", ch) for ch in picked) or len(" ".join(picked)) > 60:
        return None
    first, last = picked[0], picked[-1]
    picked[0] = first[c.rng.randrange(len(first)) :] if c.rng.random() < 0.5 else first
    picked[-1] = last[: c.rng.randint(1, len(last))] if c.rng.random() < 0.5 else last
    value = " ".join(picked)
    return Key(fld, value) if re.search(r"\w", value) else None


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _accented(variant: Callable[[str], str]) -> _Gen:
    def gen(c: _Corpus) -> Node | None:
        return _text(variant(c.rng.choice(c.accented))) if c.accented else None

    return gen


def _header_word(fld: str) -> _Gen:
    def gen(c: _Corpus) -> Node | None:
        text = c.pick_message(fld).get(fld, "")
        text = _ADDRESS_RE.sub(" ", text) if fld == "from" else text
        if c.rng.random() < 0.25 and (m := _PHRASE_RE.search(text)):
            return Key(fld, m.group())
        w = c.word_of(text)
        if w is None:
            addresses = _ADDRESS_RE.findall(text)
            return Key(fld, c.rng.choice(addresses)) if addresses else None
        return Key(fld, w)

    return gen


def _from_domain(c: _Corpus) -> Node | None:
    addresses = _ADDRESS_RE.findall(c.pick_message("from")["from"])
    if not addresses:
        return None
    domain = c.rng.choice(addresses).rsplit("@", 1)[1]
    labels = domain.split(".")
    return Key("from", ".".join(labels[-2:]) if c.rng.random() < 0.6 else domain)


def _from_address(c: _Corpus) -> Node | None:
    addresses = _ADDRESS_RE.findall(c.pick_message("from")["from"])
    return Key("from", c.rng.choice(addresses)) if addresses else None


def _bcc(c: _Corpus) -> Node | None:
    if any(lk["bcc"] for lk in c.lookups):
        return _header_word("bcc")(c)
    return Key("bcc", c.common())  # no Bcc in the corpus: expected to match nothing


def _header_common(c: _Corpus) -> Node | None:
    names = [h for h in _COMMON_HEADERS if c.header_df[h] >= 2]
    if not names:
        return None
    name = c.rng.choice(names)
    w = c.word_of(c.pick_message(f"header:{name}")[f"header:{name}"])
    return Key("header", w, header=name) if w else None


def _header_rare(c: _Corpus) -> Node | None:
    names = sorted(h for h, n in c.header_df.items() if n <= 10)
    if not names:
        return None
    name = c.rng.choice(names)
    value = c.pick_message(f"header:{name}")[f"header:{name}"]
    w = c.word_of(value) or value.strip()[:20]
    return Key("header", w, header=name) if w else None


def _punct(c: _Corpus) -> Node | None:
    kind = c.rng.choice(("hyphen", "address", "domain"))
    if kind == "hyphen" and c.rng.random() < 0.3 and c.count("text", "e-mail"):
        return _text("e-mail")
    pattern = {"hyphen": _HYPHEN_RE, "address": _ADDRESS_RE, "domain": _DOMAIN_RE}[kind]
    found = sorted(set(pattern.findall(c.pick_message("body")["body"])))
    return Key(c.rng.choice(("text", "body")), c.rng.choice(found)) if found else None


def _and(c: _Corpus) -> Node | None:
    lk = c.pick_message("subject")
    s, f = c.word_of(lk["subject"]), c.word_of(_ADDRESS_RE.sub(" ", lk["from"])) or c.word_of(lk["from"])
    if not (s and f):
        return None
    third = c.word_of(lk["body"], minlen=5)
    items: tuple[Node, ...] = (Key("subject", s), Key("from", f))
    return And((*items, Key("body", third))) if third and c.rng.random() < 0.4 else And(items)


def _or(c: _Corpus) -> Node | None:
    return Or(c.key(), c.key())


def _not(c: _Corpus) -> Node | None:
    return Not(c.key())


def _and_not(c: _Corpus) -> Node | None:
    return And((Key("text", c.common()), Not(c.key())))


def _not_or(c: _Corpus) -> Node | None:
    inner = Not(Or(c.key(), c.key()))
    return inner if c.rng.random() < 0.4 else And((Key("text", c.common()), inner))


def _nomatch(c: _Corpus) -> Node | None:
    kind = c.rng.choice(("random", "glued", "absent-header"))
    if kind == "absent-header":
        return Key("header", c.common(), header="x-ftsd-no-such-header")
    if kind == "glued":
        value = c.mid() + c.mid()
    else:
        value = "".join(c.rng.choice(_CONSONANTS) for _ in range(c.rng.randint(6, 10)))
    return _text(value) if c.count("text", value) == 0 else None


def _empty(c: _Corpus) -> Node | None:
    return c.rng.choice(
        (
            Key("text", ""),
            Key("body", ""),
            Key("subject", ""),
            Key("header", "", header="x-mailer"),
            Not(Key("from", "")),
            And((Key("text", c.common()), Key("cc", ""))),
        )
    )


def _symbols(c: _Corpus) -> Node | None:
    """A key without any letter or digit: a common one, or a slice of a punctuation run of some message."""
    fld = c.rng.choice(("body", "body", "text", "text", "subject", "from", "to", "header"))
    if fld == "header":
        return Key("header", c.rng.choice(_COMMON_SYMBOLS), header=c.rng.choice(("received", "content-type")))
    if c.rng.random() < 0.4:
        return Key(fld, c.rng.choice(_COMMON_SYMBOLS))
    runs = sorted(set(_SYMBOL_RUN_RE.findall(c.pick_message(fld)[fld])))
    if not runs:
        return None
    run = c.rng.choice(runs)
    start = c.rng.randrange(len(run))
    value = run[start : c.rng.randint(start + 1, min(len(run), start + 12))]
    return Key(fld, f" {value}" if c.rng.random() < 0.2 else value) if value.strip() else None


def _body_or_text(c: _Corpus, fld: str) -> Node | None:
    """A word of some message's header lines that also occurs in some body (BODY and TEXT then differ).

    TEXT queries reuse the words drawn for BODY first, so that the two categories pair up.
    """
    if fld == "text" and c.body_words:
        return Key(fld, c.body_words.pop(0))
    lk = c.pick_message("text")
    names = sorted(k for k in lk if k.startswith("header:") and k[7:] not in ("subject", "from", "to", "cc"))
    if not names:
        return None
    w = c.word_of(lk[c.rng.choice(names)], minlen=4)
    if w is None or not 0 < c.count("body", w) < c.count("text", w):
        return None
    if fld == "body":
        c.body_words.append(w)
    return Key(fld, w)


_GENERATORS: dict[str, _Gen] = {
    "rare_word": lambda c: _text(c.rare()),
    "common_word": lambda c: Key(c.rng.choice(("text", "body")), c.common()),
    "infix": _infix,
    "short": _short,
    "long": _long,
    "phrase": _phrase,
    "phrase_punct": _phrase_punct,
    "accented": _accented(lambda w: w),
    "unaccented": _accented(_strip_accents),
    "upper": _accented(str.upper),
    "subject": _header_word("subject"),
    "from_word": _header_word("from"),
    "from_domain": _from_domain,
    "from_address": _from_address,
    "to": _header_word("to"),
    "cc": _header_word("cc"),
    "bcc": _bcc,
    "header_common": _header_common,
    "header_rare": _header_rare,
    "punct": _punct,
    "body": lambda c: _body_or_text(c, "body"),
    "text": lambda c: _body_or_text(c, "text"),
    "and": _and,
    "or": _or,
    "not": _not,
    "and_not": _and_not,
    "not_or": _not_or,
    "nomatch": _nomatch,
    "empty": _empty,
    "symbols": _symbols,
}
assert set(_GENERATORS) == set(CATEGORIES)


def _quotas(n: int) -> dict[str, int]:
    """Largest-remainder split of n over CATEGORIES by weight, at least one each."""
    if n < len(CATEGORIES):
        raise ValueError(f"n must be at least {len(CATEGORIES)} (one query per category)")
    total = sum(CATEGORIES.values())
    spare = n - len(CATEGORIES)
    exact = {cat: spare * w / total for cat, w in CATEGORIES.items()}
    quotas = {cat: 1 + int(x) for cat, x in exact.items()}
    by_remainder = sorted(CATEGORIES, key=lambda cat: (-(exact[cat] % 1), cat))
    for cat in by_remainder[: n - sum(quotas.values())]:
        quotas[cat] += 1
    return quotas


def generate_queries(ref: ReferenceIndex, seed: int = 1, n: int = 240) -> list[tuple[str, Node]]:
    """n (category, query AST) pairs drawn from the corpus of `ref`; the same for the same seed and corpus.

    A category whose generator cannot draw anything (no accented word in the corpus, say) falls back to a rare
    word query under its own name, so every category is present and the count is exactly n.
    """
    c = _Corpus(ref, random.Random(seed))
    out: list[tuple[str, Node]] = []
    seen: set[str] = set()
    for cat, quota in _quotas(n).items():
        made = 0
        for _attempt in range(quota * 30):
            if made == quota:
                break
            node = _GENERATORS[cat](c)
            if node is None or format_query(node) in seen:
                continue
            seen.add(format_query(node))
            out.append((cat, node))
            made += 1
        while made < quota:  # nothing (new) to draw for this category in this corpus
            out.append((cat, _text(c.rare())))
            made += 1
    return out


def iter_keys(node: Node) -> Iterator[Key]:
    """The Key leaves of a query."""
    if isinstance(node, Key):
        yield node
    elif isinstance(node, And):
        for item in node.items:
            yield from iter_keys(item)
    elif isinstance(node, Or):
        yield from iter_keys(node.left)
        yield from iter_keys(node.right)
    elif isinstance(node, Not):
        yield from iter_keys(node.item)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("maildir", nargs="?", default="/tmp/corpus/corpus-a")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-n", type=int, default=240)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print every query with its INBOX hit count")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    ref = ReferenceIndex(args.maildir, workers=args.workers)
    t1 = time.perf_counter()
    queries = generate_queries(ref, seed=args.seed, n=args.n)
    t2 = time.perf_counter()
    print(f"{len(ref)} messages decoded in {t1 - t0:.1f}s; {len(queries)} queries generated in {t2 - t1:.1f}s")
    hist = Counter(cat for cat, _ in queries)
    for cat in CATEGORIES:
        print(f"  {cat:14} {hist[cat]:4}")
    if args.list:
        for cat, node in queries:
            hits = sum(len(ref.search(box, node)) for box in ref.mailboxes)
            print(f"{cat:14} {hits:5}  {format_query(node)}")
        print(f"searching all: {time.perf_counter() - t2:.1f}s")


if __name__ == "__main__":
    main()
