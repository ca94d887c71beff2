"""Decoder throughput and per-part overhead. Standalone: `python bench/bench_decoders.py [--quick]`.

Generates documents of each supported type in three sizes (with the generators of tests/decoders/makedocs.py,
so the test-only libraries must be installed), decodes each through decode_attachment (in the sandbox where
the decoder is sandboxed) and directly in this process, and prints:
- MB/s of input per type and size, through decode_attachment;
- the sandbox's cost per part (sandboxed minus in-process time, on the smallest document), next to the cost
  of spawning a fresh `python` per part, which is what the fork server avoids;
- pypdfium2 against pdfminer.six on the same PDFs (speed and word recall), when pdfminer.six is installed.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftsd.decoders import BY_NAME, decode_attachment  # noqa: E402
from ftsd.decoders.sandbox import DecoderSandbox  # noqa: E402
from ftsd.settings import DecoderSettings, FtsSettings, Settings  # noqa: E402
from tests.decoders import makedocs as mk  # noqa: E402

TEXT_CHARS = FtsSettings().max_text_chars  # fts.max_text_chars: what message.py passes

LIMITS = DecoderSettings(max_part_bytes=100_000_000, timeout_s=120)  # bound to a DecoderSandbox in main()
OOXML = "application/vnd.openxmlformats-officedocument."
rng = random.Random(42)
VOCABULARY = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]


def paragraphs(count: int) -> list[str]:
    return [" ".join(rng.choice(VOCABULARY) for _ in range(60)) for _ in range(count)]


# name -> (MIME type, generator of a document of n paragraphs)
GENERATORS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "pdf": ("application/pdf", lambda n: mk.make_pdf(paragraphs(n))),
    "docx": (OOXML + "wordprocessingml.document", lambda n: mk.make_docx(paragraphs(n))),
    "xlsx": (OOXML + "spreadsheetml.sheet", lambda n: mk.make_xlsx(paragraphs(n))),
    "pptx": (OOXML + "presentationml.presentation", lambda n: mk.make_pptx(paragraphs(max(1, n // 4)))),
    "odt": ("application/vnd.oasis.opendocument.text", lambda n: mk.make_odf("odt", paragraphs(n))),
    "ods": ("application/vnd.oasis.opendocument.spreadsheet", lambda n: mk.make_odf("ods", paragraphs(n))),
    "rtf": ("application/rtf", lambda n: mk.make_rtf(paragraphs(n))),
    "csv": ("text/csv", lambda n: mk.make_csv([[str(i), p] for i, p in enumerate(paragraphs(n))])),
    "ics": ("text/calendar", lambda n: b"".join(mk.make_ics(p[:50], p, "Room", "Ann") for p in paragraphs(n))),
}
FIXTURES = {"doc": ("application/msword", "legacy.doc"), "xls": ("application/vnd.ms-excel", "legacy.xls"),
            "ppt": ("application/vnd.ms-powerpoint", "legacy.ppt.gz")}


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def bench_types(sizes: list[int], repeat: int, limits: DecoderSettings) -> None:
    columns = ("paras", "input", "text", "ms", "MB/s", "in-proc ms", "sandbox ms")
    print(f"{'type':6} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, (6, 10, 10, 9, 8, 11, 11), strict=True)))
    docs: list[tuple[str, str, bytes, int]] = []
    for name, (mime, make) in GENERATORS.items():
        docs += [(name, mime, make(n), n) for n in sizes]
    docs += [(name, mime, mk.fixture(file), 0) for name, (mime, file) in FIXTURES.items()]
    decode_attachment(docs[0][2], docs[0][1], None, limits, TEXT_CHARS)  # start the fork server
    for name, mime, data, count in docs:
        result = decode_attachment(data, mime, None, limits, TEXT_CHARS)
        assert result.skipped is None, (name, result.skipped)
        through = timed(lambda: decode_attachment(data, mime, None, limits, TEXT_CHARS), repeat)  # noqa: B023
        direct = timed(lambda: BY_NAME[result.decoder or ""].load()(data, TEXT_CHARS), repeat)  # noqa: B023
        print(f"{name:6} {count:6d} {len(data) / 1e6:8.3f}MB {len(result.text) / 1e6:8.3f}Mc {through * 1e3:9.1f} "
              f"{len(data) / 1e6 / through:8.2f} {direct * 1e3:11.1f} {(through - direct) * 1e3:11.1f}")


def bench_overhead(repeat: int, limits: DecoderSettings) -> None:
    tiny = mk.make_docx(["tiny"])
    mime = OOXML + "wordprocessingml.document"
    through = timed(lambda: decode_attachment(tiny, mime, None, limits, TEXT_CHARS), repeat * 5)
    direct = timed(lambda: BY_NAME["docx"].load()(tiny, TEXT_CHARS), repeat * 5)
    spawn = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat)
    cold = timed(lambda: subprocess.run([sys.executable, "-c", "import ftsd.decoders"], check=True), repeat)
    print(f"\nper-part sandbox overhead (fork server, tiny docx): {(through - direct) * 1e3:.2f} ms "
          f"(total {through * 1e3:.2f} ms, decoding itself {direct * 1e3:.2f} ms)")
    print(f"for comparison: spawning `python -c pass` {spawn * 1e3:.1f} ms; "
          f"`python -c 'import ftsd.decoders'` (a fresh sandbox per part) {cold * 1e3:.1f} ms")


def bench_pdf_libraries(sizes: list[int]) -> None:
    try:
        from pdfminer.high_level import extract_text
    except ImportError:
        print("\npdfminer.six not installed: PDF library comparison skipped")
        return
    print(f"\n{'PDF library':12} {'paras':>6} {'MB':>7} {'ms':>9} {'MB/s':>7} {'recall':>7}")
    for count in sizes:
        paras = paragraphs(count)
        data = mk.make_pdf(paras)
        words = " ".join(paras).split()
        libraries: list[tuple[str, Callable[[], str]]] = [
            ("pypdfium2", lambda: BY_NAME["pdf"].load()(data, TEXT_CHARS)),  # noqa: B023
            ("pdfminer.six", lambda: extract_text(io.BytesIO(data))),  # noqa: B023
        ]
        for library, extract in libraries:
            started = time.perf_counter()
            text = extract()
            took = time.perf_counter() - started
            found = set(re.findall(r"\w+", text))
            recall = sum(word in found for word in words) / len(words)
            print(f"{library:12} {count:6d} {len(data) / 1e6:7.3f} {took * 1e3:9.1f} {len(data) / 1e6 / took:7.2f} "
                  f"{recall:7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller documents, fewer runs")
    args = parser.parse_args()
    sizes, repeat = ([1, 50], 2) if args.quick else ([1, 200, 2000], 3)
    with DecoderSandbox() as sandbox:  # what a Runtime holds: the fork server, on its socket
        limits = sandbox.bind(Settings(decoders=LIMITS)).decoders
        bench_types(sizes, repeat, limits)
        bench_overhead(repeat, limits)
    bench_pdf_libraries(sizes[1:])


if __name__ == "__main__":
    main()
