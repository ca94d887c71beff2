"""The Solr-compatible routes without Dovecot: requests as Dovecot 2.3 sends them (docs/dovecot-solr-protocol.md),
answered by a small FastAPI app that includes solr_router, over a real Xapian index in tmp_path."""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsd import service
from ftsd.api.solr import solr_router
from ftsd.settings import Settings, load_settings
from tests.maildirs import MailDir
from tests.reference import normalise, searchable

BOX = "d43fe7122fb4056bee46000083ecc375"
BOX2 = "3d50733a7ab4056bbd4f000083ecc375"
USER = "testuser@example.org"
FQ = f"+box:{BOX} +user:{USER}"
_SOLR_SPECIAL = set(' +-&|!(){}[]^"~*?:\\/')


class Client:
    """Synchronous calls into the ASGI app through httpx.ASGITransport (one event loop per call)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ftsd") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(call())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def app_for(settings_: Settings) -> Client:
    app = FastAPI()
    app.include_router(solr_router(settings_))
    return Client(app)


def dovecot_escape(value: str) -> str:
    """Dovecot's fts_solr escaping of a search value (before URL encoding)."""
    return "".join("\\" + c if c in _SOLR_SPECIAL else c for c in value) if value else '""'


def xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def doc_xml(uid: int, fields: dict[str, str], box: str = BOX, user: str = USER) -> str:
    head = (f'<doc><field name="uid">{uid}</field><field name="box">{box}</field><field name="user">{user}</field>'
            f'<field name="id">{uid}/{box}/{user}</field>')
    return head + "".join(f'<field name="{k}">{xml_text(v)}</field>' for k, v in fields.items()) + "</doc>"


@pytest.fixture
def settings_(make_config: Callable[..., Path], tmp_path: Path) -> Settings:
    (tmp_path / "vmail" / "example.org" / "testuser").mkdir(parents=True)  # updates need the user's Maildir
    return load_settings(make_config())


@pytest.fixture
def client(settings_: Settings) -> Client:
    return app_for(settings_)


def post(client: Client, xml: str | bytes, chunk: int = 0) -> httpx.Response:
    data = xml.encode() if isinstance(xml, str) else xml
    content: Any = data
    if chunk:  # streamed like Dovecot's adds: Transfer-Encoding: chunked, boundaries anywhere
        async def stream() -> AsyncIterator[bytes]:
            for i in range(0, len(data), chunk):
                yield data[i : i + chunk]

        content = stream()
    return client.post("/solr/dovecot/update", content=content, headers={"Content-Type": "text/xml"})


def uids(client: Client, q: str, fq: str = FQ, **extra: str) -> list[int]:
    params = {"wt": "xml", "fl": "uid,score", "rows": "1000", "sort": "uid asc", "q": "{!lucene q.op=AND}" + q,
              "fq": fq, **extra}
    reply = client.get("/solr/dovecot/select", params=params)
    assert reply.status_code == 200, reply.text
    return [int(u) for u in re.findall(r'<long name="uid">(\d+)</long>', reply.text)]


MESSAGES = {
    1: {"body": "Hello Bob, the quarterly numbers are in.\n", "from": "Alice Example <alice@example.com>\n",
        "subject": "Quarterly report\n", "to": "<bob@example.com>\n",
        "hdr": "From: Alice Example <alice@example.com>\nTo: <bob@example.com>\nSubject: Quarterly report\n"
               "X-Custom: alpha\n"},
    2: {"body": "Let's meet at the café tomorrow. Bring the <budget> & notes.\nHTML part with bold  keyword zebra \n",
        "from": "Carol <carol@example.net>\n", "subject": "Café meeting\n", "cc": "Dave <dave@example.com>\n",
        "hdr": "From: Carol <carol@example.net>\nCc: Dave <dave@example.com>\nSubject: Café meeting\n"},
    3: {"body": "a+b (c) \"q\" foo:bar 100% and more\n", "subject": "Re: lunch at noon\n",
        "from": "Fahrländer <f@example.org>\n", "bcc": "secret@example.org\n",
        "hdr": "From: Fahrländer <f@example.org>\nSubject: Re: lunch at noon\nX-Custom: beta\n"},
    4: {"body": "東京都に住んでいます。 AND OR NOT\n", "subject": "", "hdr": "From: x@y.z\n", "from": "<x@y.z>\n"},
}


@pytest.fixture
def indexed(client: Client) -> Client:
    reply = post(client, "<add>" + "".join(doc_xml(uid, f) for uid, f in MESSAGES.items()) + "</add>", chunk=7)
    assert reply.status_code == 200, reply.text
    assert "<response>" in reply.text
    assert post(client, '<commit softCommit="true" waitSearcher="true"/>').status_code == 200
    return client


def test_last_uid_lookup_on_an_empty_index_is_zero(client: Client) -> None:
    reply = client.get(f"/solr/dovecot/select?wt=xml&fl=uid&rows=1&sort=uid+desc&q=box:{BOX}+AND+user:{USER}")
    assert reply.status_code == 200
    assert re.search(r"<response>.*<result [^>]*numFound=\"0\"", reply.text, re.S)
    assert "<doc>" not in reply.text


def test_last_uid_lookup_returns_one_doc_with_the_highest_uid(indexed: Client) -> None:
    reply = indexed.get(f"/solr/dovecot/select?wt=xml&fl=uid&rows=1&sort=uid+desc&q=box:{BOX}+AND+user:{USER}")
    assert re.findall(r"<doc>.*?</doc>", reply.text) == ['<doc><long name="uid">4</long></doc>']


def test_raw_query_string_as_dovecot_builds_it(indexed: Client) -> None:
    # exactly the bytes of a captured request: lowercase %xx, '+' for spaces, '%2B' for '+'
    path = (f"/solr/dovecot/select?wt=xml&fl=uid,score&rows=5&sort=uid+asc&q=%7b!lucene+q.op%3dAND%7dbody:"
            f"a%5c%2bb%5c%20%5c(c%5c)%5c%20%5c%22q%5c%22%5c%20foo%5c:bar%5c%20100%25&fq=%2Bbox:{BOX}+%2Buser:{USER}")
    reply = indexed.get(path)
    assert reply.status_code == 200, reply.text
    assert re.findall(r'<long name="uid">(\d+)</long>', reply.text) == ["3"]
    assert '<float name="score">' in reply.text


@pytest.mark.parametrize(("q", "expected"), [
    ("body:quarterly\\ numbers", [1]),
    ("body:uarter", [1]),  # substring inside a word
    ("(hdr:quarterly OR body:quarterly)", [1]),  # TEXT
    ("subject:cafe", [2]),  # accents folded
    ("from:fahrlander", [3]),
    ("body:tokyo", []),
    ("body:京都", [4]),  # across ICU's 東京|都 boundary
    ("body:AND", [3, 4]),  # a bare keyword after field: is a term (and substring of "and more")
    ("body:zebra~", [2]),  # FUZZY: matched as a substring
    ("body:foo AND -subject:re", []),
    ("body:the AND -subject:re", [2]),  # "report" contains "re"
    ("-body:the OR -subject:report", [2, 3, 4]),  # (not a) or (not b), as Dovecot means it
    ("-body:the", [3, 4]),  # pure negative: everything in the fq scope but the matches
    ("-(hdr:alice OR body:alice)", [2, 3, 4]),
    ("body:zebra OR subject:lunch", [2, 3]),
    ("subject:\"\"", [1, 2, 3]),  # the header is there (4 sent it empty)
    ("cc:dave AND -bcc:secret", [2]),
    ("hdr:x\\-custom", [1, 3]),  # HEADER X-Custom "" maybe query
    ("hdr:beta", [3]),
    ("body:\\<budget\\>\\ \\&\\ notes", [2]),  # punctuation between runs: checked on the stored text
    ("body:bold\\ \\ keyword", [2]),  # white space runs are one space on both sides
    ("body:\\,\\ the", [1]),
    ("body:quarterly\\ report", []),  # phrase candidates that are not adjacent
])
def test_search_expressions(indexed: Client, q: str, expected: list[int]) -> None:
    assert uids(indexed, q) == expected


def test_multi_mailbox_search_returns_box_and_sorts_by_box_then_uid(indexed: Client) -> None:
    assert post(indexed, "<add>" + doc_xml(2, {"body": "zebra crossing"}, box=BOX2) + "</add>").status_code == 200
    params = {"wt": "xml", "fl": "box,uid,score", "rows": "100000", "sort": "box asc,uid asc",
              "q": "{!lucene q.op=AND}body:zebra", "fq": f"+user:{USER} +(box:{BOX} OR box:{BOX2})"}
    text = indexed.get("/solr/dovecot/select", params=params).text
    docs = re.findall(r'<doc><str name="box">(\w+)</str><long name="uid">(\d+)</long><float name="score">', text)
    assert docs == sorted([(BOX2, "2"), (BOX, "2")])
    params["fq"] = f"+user:{USER}"  # more than 10 mailboxes: Dovecot leaves the box list out
    assert len(re.findall("<doc>", indexed.get("/solr/dovecot/select", params=params).text)) == 2


def test_rows_and_descending_sort_are_numeric(client: Client) -> None:
    post(client, "<add>" + "".join(doc_xml(uid, {"body": "same"}) for uid in (9, 10, 100, 2)) + "</add>")
    assert uids(client, "body:same", sort="uid desc", rows="3") == [100, 10, 9]


def test_json_replies(indexed: Client) -> None:
    reply = indexed.get("/solr/dovecot/select", params={"wt": "json", "q": "body:zebra", "fq": FQ, "fl": "uid"})
    assert reply.json()["response"]["docs"] == [{"uid": 2}]
    assert reply.json()["response"]["numFound"] == 1


def test_readding_an_id_replaces_the_document(indexed: Client) -> None:
    post(indexed, "<add>" + doc_xml(1, {"body": "completely different"}) + "</add>")
    assert uids(indexed, "body:quarterly") == []
    assert uids(indexed, "subject:report") == []  # not merged: fields missing from the new doc are gone
    assert uids(indexed, "body:different") == [1]


def test_atomic_updates_merge_into_the_stored_fields(indexed: Client) -> None:
    xml = (f'<add><doc><field name="id">1/{BOX}/{USER}</field>'
           f'<field name="body" update="add">appended words</field>'
           f'<field name="subject" update="set">New subject</field></doc></add>')
    assert post(indexed, xml).status_code == 200
    assert uids(indexed, "body:quarterly\\ numbers AND body:appended") == [1]
    assert uids(indexed, "subject:quarterly") == []
    assert uids(indexed, "subject:new\\ subject") == [1]
    assert uids(indexed, "from:alice") == [1]  # untouched field kept


def test_delete_by_id_then_commit(indexed: Client) -> None:
    reply = post(indexed, f"<delete><id>2/{BOX}/{USER}</id><id>3/{BOX}/{USER}</id></delete>")
    assert reply.status_code == 200
    assert post(indexed, '<commit softCommit="true" waitSearcher="false"/>').status_code == 200
    assert uids(indexed, "*:*") == [1, 4]


def test_delete_by_query(indexed: Client) -> None:
    assert post(indexed, f"<delete><query>box:{BOX} AND user:{USER} AND body:the</query></delete>").status_code == 200
    assert uids(indexed, "*:*") == [3, 4]
    assert post(indexed, "<delete><query>*:*</query></delete>").status_code == 400  # which user's index?


def test_commit_and_optimize_as_cron_jobs_send_them(client: Client) -> None:
    for method in ("GET", "POST"):
        for param in ("commit=true", "optimize=true"):
            reply = client.request(method, f"/solr/dovecot/update?{param}")
            assert reply.status_code == 200, reply.text
            assert '<int name="status">0</int>' in reply.text
    assert post(client, "<optimize/>").status_code == 200


@pytest.mark.parametrize(("xml", "fragment"), [
    ("<add><doc><field name=\"uid\">1</field>", "malformed"),
    (f'<add><doc><field name="uid">1</field><field name="box">{BOX}</field><field name="user"></field></doc></add>',
     "public namespace"),
    (f'<add><doc><field name="box">{BOX}</field><field name="user">u</field></doc></add>', "uid"),
    ('<add><doc><field name="uid">1</field><field name="box">../x</field><field name="user">u</field></doc></add>',
     "box"),
    (f'<add><doc><field name="uid">1</field><field name="box">{BOX}</field><field name="user">../etc</field></doc>'
     "</add>", "invalid user name"),
    ('<!DOCTYPE x [<!ENTITY a "aaaa">]><add/>', "DTD"),
])
def test_bad_updates_are_refused_with_a_4xx(client: Client, xml: str, fragment: str) -> None:
    reply = post(client, xml + " " * 300_000, chunk=8184)  # the whole body is read before the answer
    assert 400 <= reply.status_code < 500
    assert fragment in reply.text


@pytest.mark.parametrize("q", ["body:foo", "nofield", "unknown:x", "body:(foo", "body:foo AND"])
def test_bad_selects_are_refused_with_400(client: Client, q: str) -> None:
    fq = f"+box:{BOX}" if q == "body:foo" else FQ  # no user: which index?
    reply = client.get("/solr/dovecot/select", params={"q": q, "fq": fq})
    assert reply.status_code == 400, reply.text
    assert '<lst name="error">' in reply.text


def test_select_by_form_post(indexed: Client) -> None:
    reply = indexed.post("/solr/dovecot/select", data={"q": "body:zebra", "fq": FQ, "fl": "uid", "wt": "xml"})
    assert re.findall(r'<long name="uid">(\d+)</long>', reply.text) == ["2"]


def test_concurrent_updates_of_one_user_all_land(client: Client) -> None:
    def add(start: int) -> None:
        xml = "<add>" + "".join(doc_xml(uid, {"body": f"word{uid} common"}) for uid in range(start, start + 25))
        assert post(client, xml + "</add>", chunk=1000).status_code == 200

    threads = [threading.Thread(target=add, args=(1 + 25 * i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert uids(client, "body:common") == list(range(1, 101))


def test_huge_fields_are_cut_at_max_text_chars(make_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "vmail" / "example.org" / "testuser").mkdir(parents=True)
    c = app_for(load_settings(make_config(fts={"max_text_chars": 1000})))
    body = "needle " + "x " * 200_000 + "haystack"
    assert post(c, "<add>" + doc_xml(1, {"body": body}) + "</add>", chunk=8184).status_code == 200
    assert uids(c, "body:needle") == [1]
    assert uids(c, "body:haystack") == []


def test_documents_of_ftsd_s_own_indexer_are_answered_too(maildir: MailDir, make_config: Callable[..., Path]) -> None:
    settings_ = load_settings(make_config())
    uid = maildir.deliver("INBOX", subject="Invoice 17", body="please pay the invoice")
    other = maildir.deliver("INBOX", subject="Other", body="nothing here to pay")
    assert not service.index_users(settings_, ["alice@example.org"]).failed
    guid = service.status(settings_, "alice@example.org")["mailboxes"][0]["guid"]
    c = app_for(settings_)
    assert uids(c, "body:nvoic", fq=f"+box:{guid} +user:alice@example.org") == [uid]
    fq = f"+box:{guid} +user:alice@example.org"
    assert uids(c, "subject:invoice\\ 17", fq=fq) == [uid]
    # phrases need the text: such documents keep none, so the message is read from the Maildir
    assert uids(c, "body:pay\\ the", fq=fq) == [uid]
    assert uids(c, "body:pay\\ invoice", fq=fq) == []
    assert uids(c, "-body:pay\\ the", fq=fq) == [other]
    assert uids(c, "hdr:other", fq=fq) == [other]  # its indexer keeps Subject's value out of the header pool


# -- exactness against a brute-force scan of the stored texts ---------------------------------------------------

WORDS = ["Fahrländer", "café", "naïve", "東京都に住んでいます", "foo.bar@x.com", "don't", "1,000.50", "quarterly",
         "numbers", "the", "a+b", "(c)", "100%", "X-Custom:", "ŒUVRE", "straße", "ﬁnance", "Ａｌｐｈａ", "x" * 30,
         "re:", "—", "hello-world", "C++", "e-mail", "ΣΊΣΥΦΟΣ", "<tag>", "&", "\"quoted\""]
FIELDS = ["body", "hdr", "subject", "from", "to", "cc", "bcc"]


def _random_docs(seed: int, count: int) -> dict[int, dict[str, str]]:
    rnd = random.Random(seed)
    docs = {}
    for uid in range(1, count + 1):
        docs[uid] = {f: " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 12)))
                     + rnd.choice(["", "\n", "  \n\t"]) for f in FIELDS if rnd.random() < 0.8}
    return docs


DOCS = _random_docs(11, 120)


Fields = dict[str, str]
Predicate = Callable[[Fields], bool]


def _contains(field: str, value: str) -> Predicate:
    needle = normalise(value)
    return lambda fields: needle in searchable(normalise(fields.get(field, "")))


@pytest.fixture(scope="module")
def random_index(tmp_path_factory: pytest.TempPathFactory) -> Client:
    root = tmp_path_factory.mktemp("random")
    (root / "ftsd.toml").write_text(f'mail_location = "maildir:{root}/vmail/%u:INDEX={root}/index/%u"\n')
    (root / "vmail" / USER).mkdir(parents=True)
    c = app_for(load_settings(root / "ftsd.toml"))
    reply = post(c, "<add>" + "".join(doc_xml(u, f) for u, f in DOCS.items()) + "</add>", chunk=999)
    assert reply.status_code == 200, reply.text
    return c


def _needle(draw: Any) -> str:
    uid = draw(st.sampled_from(sorted(DOCS)))
    text = " ".join(DOCS[uid].values()) or "x"
    start = draw(st.integers(0, max(len(text) - 1, 0)))
    return text[start : start + draw(st.integers(1, 25))].strip() or "e"


@st.composite
def _query(draw: Any, depth: int = 0) -> tuple[str, Predicate]:
    """(Lucene text as Dovecot escapes it, the brute-force predicate it stands for)."""
    kind = draw(st.sampled_from(["key"] * 3 + (["not", "or", "and"] if depth < 2 else [])))
    if kind == "key":
        field = draw(st.sampled_from(FIELDS))
        value = _needle(draw) if draw(st.booleans()) else draw(st.text(alphabet="aeiouxé京 .-@'", min_size=1,
                                                                        max_size=6)).strip() or "a"
        return f"{field}:{dovecot_escape(value)}", _contains(field, value)
    if kind == "not":
        text, pred = draw(_query(depth + 1))
        return f"-({text})", lambda f: not pred(f)
    (t1, p1), (t2, p2) = draw(_query(depth + 1)), draw(_query(depth + 1))
    if kind == "or":
        return f"({t1} OR {t2})", lambda f: p1(f) or p2(f)
    return f"({t1} AND {t2})", lambda f: p1(f) and p2(f)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_query())
def test_every_answer_equals_a_brute_force_scan(random_index: Client, query: tuple[str, Predicate]) -> None:
    text, predicate = query
    expected = [uid for uid, fields in DOCS.items() if predicate(fields)]
    assert uids(random_index, text) == expected, text


def test_update_limits_hold_without_the_app_guard(make_config: Callable[..., Path], tmp_path: Path) -> None:
    """The Solr routes bound their bodies themselves (a bare router, no middleware): per request, per document,
    per <delete><query>; the documents before the limit are committed; unterminated quotes are a 400."""
    (tmp_path / "vmail" / "example.org" / "testuser").mkdir(parents=True)
    c = app_for(load_settings(make_config(limits={"update_bytes": 300_000, "update_doc_bytes": 100_000,
                                                  "solr_query_chars": 1000})))
    docs = "<add>" + doc_xml(1, {"body": "firstdoc"}) + "".join(doc_xml(u, {"body": "x" * 50_000})
                                                                 for u in range(2, 12)) + "</add>"
    reply = post(c, docs, chunk=8192)
    assert reply.status_code == 413 and "limits.update_bytes" in reply.json()["error"]["message"]
    assert uids(c, "body:firstdoc") == [1]
    big = "<add>" + doc_xml(20, {"body": "y" * 400_000}) + "</add>"
    reply = post(c, big, chunk=8192)
    assert reply.status_code == 413 and "limits.update_doc_bytes" in reply.json()["error"]["message"]
    reply = post(c, f"<delete><query>user:{USER} AND body:{'z' * 2000}</query></delete>")
    assert reply.status_code == 413 and "limits.solr_query_chars" in reply.json()["error"]["message"]
    assert uids(c, "body:firstdoc") == [1]  # nothing deleted
    reply = c.get("/solr/dovecot/select", params={"q": 'body:"unterminated', "fq": FQ})
    assert reply.status_code == 400 and "unterminated quote" in reply.text
    reply = c.get("/solr/dovecot/select", params={"q": "body:" + "a" * 2000, "fq": FQ})
    assert reply.status_code == 400 and "limits.solr_query_chars" in reply.text
