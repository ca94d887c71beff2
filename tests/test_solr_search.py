"""The Solr bridge on the one evaluator: Lucene text -> ftsd's query AST and scope, `select` over a real index,
and the reader a `select` uses going back to the pool."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ftsd import solr
from ftsd.errors import QueryError, TooLargeError, UnknownUserError
from ftsd.query import NOTHING, All, And, Key, Not, Or, Where
from ftsd.runtime import Runtime
from ftsd.settings import Settings, load_settings
from ftsd.store.index import index_path
from ftsd.userdb import lookup_user

BOX = "d43fe7122fb4056bee46000083ecc375"
USER = "testuser@example.org"


@pytest.fixture
def settings_(make_config: Callable[..., Path], tmp_path: Path) -> Settings:
    for sub in ("cur", "new", "tmp"):  # updates are taken only for users with a Maildir
        (tmp_path / "vmail" / "example.org" / "testuser" / sub).mkdir(parents=True)
    return load_settings(make_config())


def add(settings_: Settings, docs: dict[int, str], rt: Runtime) -> None:
    session = solr.UpdateSession(settings_, rt)
    body = "".join(f'<doc><field name="id">{uid}/{BOX}/{USER}</field><field name="body">{text}</field></doc>'
                   for uid, text in docs.items())
    session.feed(f"<add>{body}</add>".encode())
    session.close()


def select_uids(settings_: Settings, q: str, rt: Runtime) -> list[int]:
    params = [("q", q), ("fq", f"+box:{BOX} +user:{USER}"), ("wt", "json"), ("fl", "uid")]
    reply = solr.select(settings_, params, rt)
    return [doc["uid"] for doc in json.loads(reply.body)["response"]["docs"]]


def test_lucene_parses_into_the_imap_ast_with_a_scope() -> None:
    node = solr.parse_lucene("{!lucene q.op=AND}body:foo -subject:re hdr:x")
    assert node == And((Key("body", "foo"), Key("headers", "x"), Not(Key("subject", "re"))))
    assert solr.parse_lucene('subject:""') == Key("header", "", "subject")
    assert solr.parse_lucene("uid:x") == NOTHING
    assert solr.parse_lucene("*:*") == All()
    scoped = solr.parse_lucene(f"+user:{USER} +(box:a OR box:b) +uid:7")
    assert isinstance(scoped, And) and Or(Where(mailbox="a"), Where(mailbox="b")) in scoped.items
    scope = solr.Scope.of(scoped)
    assert (scope.user, scope.mailboxes, scope.uids) == (USER, frozenset({"a", "b"}), frozenset({7}))
    with pytest.raises(QueryError):
        solr.Scope.of(solr.parse_lucene("body:x"))


def test_ten_thousand_alternatives_nest_shallowly() -> None:
    node = solr.parse_lucene(" OR ".join(f"body:w{i}" for i in range(10_000)))
    depth, todo = 0, [(node, 1)]
    while todo:
        n, d = todo.pop()
        depth = max(depth, d)
        if isinstance(n, Or):
            todo += [(n.left, d + 1), (n.right, d + 1)]
    assert depth <= 15


def test_select_gives_its_reader_back_to_the_pool(settings_: Settings) -> None:
    rt = Runtime(settings_)
    add(settings_, {1: "alpha beta", 2: "beta gamma", 3: "gamma delta"}, rt)
    path = index_path(lookup_user(settings_, USER))
    assert select_uids(settings_, "body:beta", rt) == [1, 2]
    idle = rt.readers.idle(path)
    assert len(idle) == 1  # given back, not closed
    assert select_uids(settings_, "body:gamma\\ delta", rt) == [3]  # a phrase: checked on the stored text
    assert rt.readers.idle(path) == idle  # the same reader again, still open
    idle[0].reopen()  # raises if it had been closed


def test_delete_by_query_gives_its_reader_back_too(settings_: Settings) -> None:
    rt = Runtime(settings_)
    add(settings_, {1: "alpha", 2: "beta"}, rt)
    path = index_path(lookup_user(settings_, USER))
    session = solr.UpdateSession(settings_, rt)
    session.feed(f"<delete><query>user:{USER} AND box:{BOX} AND body:alpha</query></delete>".encode())
    session.close()
    assert len(rt.readers.idle(path)) == 1
    assert select_uids(settings_, "*:*", rt) == [2]


def test_select_pages_sorts_and_formats_without_a_hit_per_match(settings_: Settings) -> None:
    """One mailbox sorted by uid is paged straight from the answer (Dovecot's last-UID lookup, rows=UIDNEXT
    searches); several mailboxes or a sort on id take the general path; the XML lines equal the per-hit ones."""
    rt = Runtime(settings_)
    other = "0" * 31 + "1"
    add(settings_, {uid: f"word{uid % 3} common" for uid in range(1, 31)}, rt)
    session = solr.UpdateSession(settings_, rt)
    session.feed(f'<add><doc><field name="id">5/{other}/{USER}</field><field name="body">common</field></doc></add>'
                 .encode())
    session.close()

    def select(q: str, **params: str) -> solr.SolrReply:
        return solr.select(settings_, [("q", q), *params.items()], rt)

    last = select(f"box:{BOX} AND user:{USER}", rows="1", sort="uid desc", fl="uid").body.decode()
    assert '<result name="response" numFound="30" start="0">' in last
    assert '<doc><long name="uid">30</long></doc>' in last and last.count("<doc>") == 1
    every = select("body:word1", fq=f"+box:{BOX} +user:{USER}", rows="31", sort="uid asc", fl="uid,score")
    lines = every.body.decode().split("\n")
    assert lines[lines.index('<result name="response" numFound="10" start="0">') + 1 : -3] == [
        f'<doc><long name="uid">{uid}</long><float name="score">1.0</float></doc>' for uid in range(1, 31, 3)]
    ids = select("body:word2", fq=f"+box:{BOX} +user:{USER}", rows="2", sort="uid desc", fl="id,uid").body.decode()
    assert [line for line in ids.split("\n") if line.startswith("<doc>")] == [
        f'<doc><str name="id">{uid}/{BOX}/{USER}</str><long name="uid">{uid}</long></doc>' for uid in (29, 26)]
    page = select("body:word1", fq=f"+box:{BOX} +user:{USER}", rows="3", start="2", sort="uid asc",
                  fl="uid,score", wt="json")
    reply = json.loads(page.body)["response"]
    assert reply["numFound"] == 10 and [d["uid"] for d in reply["docs"]] == [7, 10, 13]
    assert reply["docs"][0]["score"] == 1.0
    both = select(f"body:common AND user:{USER}", rows="100", sort="uid desc,box asc", fl="id,uid,box,user")
    docs = both.body.decode().split("\n")
    lines = [line for line in docs if line.startswith("<doc>")]
    assert len(lines) == 31 and lines[0].startswith('<doc><str name="id">30/')
    fives = [line for line in lines if '<long name="uid">5</long>' in line]
    assert fives == [f'<doc><str name="id">5/{b}/{USER}</str><long name="uid">5</long><str name="box">{b}</str>'
                     f'<str name="user">{USER}</str></doc>' for b in sorted([BOX, other])]
    by_id = select(f"body:common AND user:{USER} AND box:{BOX}", rows="3", sort="id asc", fl="uid", wt="json")
    assert [d["uid"] for d in json.loads(by_id.body)["response"]["docs"]] == [1, 10, 11]  # id sorts as text


def test_a_pooled_reader_sees_documents_added_replaced_and_deleted_since(settings_: Settings) -> None:
    """The reader's docid -> UID table grows with the index: a reader kept in the pool finds later documents."""
    rt = Runtime(settings_)
    add(settings_, {uid: "alpha" for uid in range(1, 6)}, rt)
    assert select_uids(settings_, "body:alpha", rt) == [1, 2, 3, 4, 5]
    add(settings_, {3: "beta", 7: "alpha", 9: "alpha beta"}, rt)  # 3 replaced, 7 and 9 new
    assert select_uids(settings_, "body:alpha", rt) == [1, 2, 4, 5, 7, 9]
    assert select_uids(settings_, "body:beta", rt) == [3, 9]
    session = solr.UpdateSession(settings_, rt)
    session.feed(f"<delete><id>2/{BOX}/{USER}</id></delete>".encode())
    session.close()
    assert select_uids(settings_, "body:alpha", rt) == [1, 4, 5, 7, 9]


@pytest.mark.parametrize("uid", ["\u00b2", "4294967296", "0", "9" * 5000])
def test_an_update_or_delete_whose_uid_is_no_imap_uid_is_refused_as_a_bad_request(settings_: Settings,
                                                                                   uid: str) -> None:
    rt = Runtime(settings_)
    add(settings_, {7: "kept words"}, rt)
    for body in (f'<add><doc><field name="id">{uid}/{BOX}/{USER}</field><field name="body">x</field></doc></add>',
                 f"<delete><id>{uid}/{BOX}/{USER}</id></delete>"):
        session = solr.UpdateSession(settings_, rt)
        with pytest.raises(QueryError, match="uid"):
            session.feed(body.encode())
            session.close()
    assert select_uids(settings_, "body:kept", rt) == [7]
    assert select_uids(settings_, f"uid:{uid}", rt) == []  # a Lucene uid that no message can have: none


_UPDATE_PIECES = st.sampled_from([
    "<add>", "</add>", "<doc>", "</doc>", "<delete>", "</delete>", "<commit/>", "<optimize/>", "<id>", "</id>",
    "<query>", "</query>", '<field name="id">', '<field name="uid">', '<field name="box">', '<field name="user">',
    '<field name="body">', '<field name="subject" update="set">', '<field name="hdr" update="inc">', "</field>",
    f"7/{BOX}/{USER}", f"{BOX}", USER, "7", "0", "\u00b2", "4294967296", "body:x", "*:*", "&amp;", "&#0;",
    "&#xD800;", "<!DOCTYPE x>", "<![CDATA[", "]]>", "<?xml version='1.0'?>", "\x00", "caf\u00e9", " ", "<", ">"])


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_UPDATE_PIECES, st.text(max_size=6)), max_size=25), st.integers(1, 40))
def test_any_update_body_is_taken_or_refused_with_one_error(settings_: Settings, pieces: list[str],
                                                            cut: int) -> None:
    """Whatever bytes arrive, in whatever pieces the network cuts them: the update is applied or answers one
    client error (QueryError 400, TooLargeError 413, UnknownUserError 404), never another exception."""
    data = "".join(pieces).encode("utf-8", "surrogatepass")
    session = solr.UpdateSession(settings_, Runtime(settings_))
    try:
        for start in range(0, len(data), cut):
            session.feed(data[start : start + cut])
        session.close()
    except (QueryError, TooLargeError, UnknownUserError):
        pass
