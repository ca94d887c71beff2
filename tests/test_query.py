"""ftsd.query: IMAP SEARCH text keys -> AST, both input forms, formatting, and every error."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ftsd.errors import QueryError
from ftsd.query import FIELDS, All, And, Key, Node, Not, Or, Where, format_query, parse_argv, parse_query

EVALUATED = "(ftsd evaluates TEXT, BODY, SUBJECT, FROM, TO, CC, BCC, HEADER, ALL with AND/OR/NOT)"


def k(field: str, value: str) -> Key:
    return Key(field, value)


# --- parse_query: keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "header"])
@pytest.mark.parametrize("spelling", [str.upper, str.lower, str.title])
def test_every_string_key(field, spelling):
    assert parse_query(f"{spelling(field)} foo") == Key(field, "foo")
    assert parse_query(f'{spelling(field)} "foo bar"') == Key(field, "foo bar")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("HEADER X-Spam-Flag YES", Key("header", "YES", "x-spam-flag")),
        ('header "Message-ID" "<a@b>"', Key("header", "<a@b>", "message-id")),
        ("HEADER List-Id {0}\r\n", Key("header", "", "list-id")),
        ("ALL", All()),
        ("all", All()),
        ('SUBJECT ""', k("subject", "")),
        ("SUBJECT Café", k("subject", "Café")),
        ("TEXT Hello", k("text", "Hello")),  # case of the value is kept
        ("TEXT nil", k("text", "nil")),
        ("  \tTEXT   a\r\n", k("text", "a")),
    ],
)
def test_single_keys(query, expected):
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("SUBJECT a BODY b", And((k("subject", "a"), k("body", "b")))),
        ("SUBJECT a BODY b TO c", And((k("subject", "a"), k("body", "b"), k("to", "c")))),
        ("OR SUBJECT a BODY b", Or(k("subject", "a"), k("body", "b"))),
        ("NOT FROM x", Not(k("from", "x"))),
        ("NOT NOT ALL", Not(Not(All()))),
        ("OR NOT CC a BCC b", Or(Not(k("cc", "a")), k("bcc", "b"))),
        ("NOT OR CC a BCC b", Not(Or(k("cc", "a"), k("bcc", "b")))),
        ("OR OR TO a TO b TO c", Or(Or(k("to", "a"), k("to", "b")), k("to", "c"))),
        ("OR (TO a CC b) FROM c", Or(And((k("to", "a"), k("cc", "b"))), k("from", "c"))),
        ("NOT (TO a CC b)", Not(And((k("to", "a"), k("cc", "b"))))),
        ("(TO a)", k("to", "a")),
        ("((((ALL))))", All()),
        ("(TO a CC b) FROM c", And((And((k("to", "a"), k("cc", "b"))), k("from", "c")))),
        ("TO a (CC b (FROM c))", And((k("to", "a"), And((k("cc", "b"), k("from", "c")))))),
        ("(TO a)(CC b)", And((k("to", "a"), k("cc", "b")))),
        ("or(TO a)not(CC b)", Or(k("to", "a"), Not(k("cc", "b")))),
        ('OR SUBJECT"x"BODY"y"', Or(k("subject", "x"), k("body", "y"))),
    ],
)
def test_combinations_and_nesting(query, expected):
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    "query, value",
    [
        (r'TEXT "say \"hi\""', 'say "hi"'),
        (r'TEXT "back\\slash"', "back\\slash"),
        (r'TEXT "\\\""', '\\"'),
        ('TEXT "(not a paren) {5}"', "(not a paren) {5}"),
        ('TEXT "two\r\nlines"', "two\r\nlines"),
        ('TEXT "ünï"', "ünï"),
    ],
)
def test_quoted_strings(query, value):
    assert parse_query(query) == k("text", value)


@pytest.mark.parametrize(
    "query, value",
    [
        ("TEXT {5}\r\nhello", "hello"),
        ("TEXT {5}\nhello", "hello"),
        ("TEXT {5}hello", "hello"),
        ("TEXT {5+}\r\nhello", "hello"),
        ("TEXT {11}\r\nhello world", "hello world"),
        ('TEXT {7}\r\n"a) (b"', '"a) (b"'),
        ("TEXT {0}\r\n", ""),
        ("TEXT {6}\r\ncafé!", "café!"),  # 5 characters, 6 bytes
        ("TEXT {3}\r\n日", "日"),  # 1 character, 3 bytes
        ("TEXT {4}\r\n😀", "😀"),
        ("TEXT {2}\r\n\r\n", "\r\n"),
    ],
)
def test_literals(query, value):
    assert parse_query(query) == k("text", value)
    assert parse_query(query.encode()) == k("text", value)


def test_literal_followed_by_more_keys():
    q = "OR SUBJECT {6}\r\ncafé! (BODY {3}\r\n日)"
    assert parse_query(q) == Or(k("subject", "café!"), k("body", "日"))


@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", "US-ASCII", "us-ascii", '"UTF-8"', "{5}\r\nUTF-8"])
def test_charset_prefix(charset):
    assert parse_query(f"CHARSET {charset} TEXT foo") == k("text", "foo")
    assert parse_query(f"charset {charset} TEXT a BODY b") == And((k("text", "a"), k("body", "b")))


def test_bytes_input():
    assert parse_query("SUBJECT Grüße".encode()) == k("subject", "Grüße")


# --- parse_argv -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["OR", "SUBJECT", "x", "BODY", "hello world"], Or(k("subject", "x"), k("body", "hello world"))),
        (["subject", "x"], k("subject", "x")),
        (["HEADER", "X-Spam", "yes it is"], Key("header", "yes it is", "x-spam")),
        (["(", "SUBJECT", "a", "BODY", "b", ")"], And((k("subject", "a"), k("body", "b")))),
        (["(SUBJECT", "a", "BODY", "b", ")"], And((k("subject", "a"), k("body", "b")))),
        (["OR", "((SUBJECT", "a", ")", "ALL)", "TO", "c"], Or(And((k("subject", "a"), All())), k("to", "c"))),
        (["OR", "(", "SUBJECT", "a", ")", "NOT", "ALL"], Or(k("subject", "a"), Not(All()))),
        (["(NOT", "ALL)"], Not(All())),
        (["((ALL))"], All()),
        (["NOT", "(OR", "CC", "a", "BCC", "b", ")"], Not(Or(k("cc", "a"), k("bcc", "b")))),
        # string arguments are verbatim: parentheses, quotes, braces, keywords, empty strings
        (["SUBJECT", "(x)"], k("subject", "(x)")),
        (["SUBJECT", "x)"], k("subject", "x)")),
        (["SUBJECT", "(("], k("subject", "((")),
        (["SUBJECT", '"quoted"'], k("subject", '"quoted"')),
        (["SUBJECT", "{5}"], k("subject", "{5}")),
        (["SUBJECT", "OR"], k("subject", "OR")),
        (["SUBJECT", ""], k("subject", "")),
        (["SUBJECT", "a\\b"], k("subject", "a\\b")),
        (["CHARSET", "utf-8", "TEXT", "x y"], k("text", "x y")),
    ],
)
def test_argv(argv, expected):
    assert parse_argv(argv) == expected


def test_argv_takes_a_sequence_not_a_string():
    with pytest.raises(TypeError):
        parse_argv("SUBJECT x")
    assert parse_argv(("TEXT", "x")) == k("text", "x")


# --- format_query -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, text",
    [
        (All(), "ALL"),
        (k("subject", 'a "b" \\c'), r'SUBJECT "a \"b\" \\c"'),
        (Key("header", "x", "list-id"), 'HEADER "list-id" "x"'),
        (And((k("to", "a"), Not(k("cc", "b")))), 'TO "a" NOT CC "b"'),
        (Or(And((k("to", "a"), All())), k("cc", "b")), 'OR (TO "a" ALL) CC "b"'),
        (And((And((All(), All())), All())), "(ALL ALL) ALL"),
    ],
)
def test_format(node, text):
    assert format_query(node) == text
    assert parse_query(text) == node


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Key("date", "x"),
        lambda: Key("header", "x"),
        lambda: Key("subject", "x", "subject"),
        lambda: Key("header", "x", "Subject"),
        lambda: Key("header", "x", "a:b"),
        lambda: And((All(),)),
    ],
)
def test_invalid_nodes_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


values = st.text(max_size=12)
header_names = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1).map(
    str.lower
)
leaves = st.one_of(
    st.builds(Key, st.sampled_from([f for f in FIELDS if f != "header"]), values),
    st.builds(lambda name, value: Key("header", value, name), header_names, values),
    st.just(All()),
)
nodes = st.recursive(
    leaves,
    lambda sub: st.one_of(
        st.builds(Or, sub, sub),
        st.builds(Not, sub),
        st.lists(sub, min_size=2, max_size=4).map(lambda items: And(tuple(items))),
    ),
    max_leaves=12,
)


def verbatim(arg: str) -> str:
    """An argv string argument; an item that is exactly '(' or ')' is always a parenthesis, so skip those."""
    assume(arg not in ("(", ")"))
    return arg


def to_argv(node: Node, top: bool = True) -> list[str]:
    """The argv a shell user would type for node: keywords, verbatim strings, parentheses as their own items."""
    match node:
        case All():
            return ["ALL"]
        case Key(field="header"):
            return ["HEADER", verbatim(str(node.header)), verbatim(node.value)]
        case Key():
            return [node.field.upper(), verbatim(node.value)]
        case Or():
            return ["OR", *to_argv(node.left, False), *to_argv(node.right, False)]
        case Not():
            return ["NOT", *to_argv(node.item, False)]
        case And():
            inner = [a for item in node.items for a in to_argv(item, False)]
            return inner if top else ["(", *inner, ")"]
        case Where():
            raise AssertionError("Where keys have no IMAP syntax")


@given(nodes)
def test_round_trip_format_parse(node):
    text = format_query(node)
    assert parse_query(text) == node
    assert parse_query(text.encode()) == node


@given(nodes)
def test_round_trip_argv(node):
    assert parse_argv(to_argv(node)) == node


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, fragments",
    [
        ("", ["empty query"]),
        ("  \r\n", ["empty query"]),
        ("CHARSET UTF-8", ["empty query after CHARSET"]),
        # parentheses
        ("(TEXT a", ["unbalanced parenthesis", "'(' at position 1"]),
        ("TEXT a ((BODY b)", ["unbalanced parenthesis", "'(' at position 8"]),
        ("TEXT a)", ["unbalanced parenthesis", "')' at position 7"]),
        (")", ["unbalanced parenthesis", "position 1"]),
        ("TEXT a () BODY b", ["empty parentheses at position 8"]),
        ("(" * 150 + "ALL" + ")" * 150, ["nested deeper than 100", "position 101"]),
        ("NOT " * 150 + "ALL", ["nested deeper than 100"]),
        # missing arguments
        ("SUBJECT", ["missing argument", "SUBJECT at position 1", "end of the query"]),
        ("TEXT a BODY", ["missing argument", "BODY at position 8"]),
        ("(SUBJECT)", ["missing argument", "SUBJECT at position 2", "')' at position 9"]),
        ("SUBJECT (x)", ["missing argument", "SUBJECT", "'(' at position 9"]),
        ("HEADER", ["missing argument", "HEADER at position 1", "header field name"]),
        ("HEADER X-Foo", ["missing argument", "HEADER at position 1", "needs a string"]),
        ("OR TEXT a", ["missing argument", "OR at position 1", "search key"]),
        ("OR", ["missing argument", "OR at position 1"]),
        ("(OR TEXT a)", ["missing argument", "OR at position 2", "')' at position 11"]),
        ("NOT", ["missing argument", "NOT at position 1"]),
        ("CHARSET", ["missing argument", "CHARSET at position 1"]),
        # unknown keys and trailing garbage
        ("foo", ["unknown search key 'foo' at position 1", EVALUATED]),
        ("TEXT a AND BODY b", ["unknown search key 'AND' at position 8"]),
        ('TEXT a "b"', ["unexpected string 'b' at position 8"]),
        ("TEXT a {1}\r\nb", ["unexpected string 'b' at position 8"]),
        ('"TEXT" a', ["unexpected string 'TEXT' at position 1"]),
        ("HEADER Subject: x", ["invalid header field name 'Subject:' at position 8"]),
        ('HEADER "" x', ["invalid header field name '' at position 8"]),
        ("TEXT a CHARSET UTF-8 BODY b", ["CHARSET at position 8 must come before"]),
        ("CHARSET ISO-8859-1 TEXT x", ["unsupported charset 'ISO-8859-1' at position 9"]),
        ("CHARSET UTF-8 CHARSET UTF-8 TEXT x", ["CHARSET at position 15 must come before"]),
        # quoted strings
        ('TEXT "abc', ["unterminated quoted string", "position 6"]),
        ('TEXT "abc\\"', ["unterminated quoted string", "position 6"]),
        ('TEXT "a\\nb"', ["invalid escape", "\\n", "position 6"]),
        # literals
        ("TEXT {5}\r\nabc", ["literal {5}", "position 6", "5 bytes but only 3 remain"]),
        ("TEXT {4}\r\ncafé", ["literal {4} at position 6", "ends inside a UTF-8 character"]),
        ("TEXT {2}\r\nabc", ["literal {2}", "position 6", "does not match", "'c' at position 13"]),
        ("TEXT {3}\r\nab", ["literal {3}", "3 bytes but only 2 remain"]),
        ("TEXT {99999999999}\r\nabc", ["literal {99999999999}", "only 3 remain"]),
        ("TEXT {" + "9" * 5000 + "}\r\nabc", ["malformed literal at position 6"]),  # over int()'s 4,300 digits
        ("TEXT {\u0663}\r\nabc", ["malformed literal at position 6"]),  # an Arabic-Indic 3: not an IMAP number
        ("TEXT {x}\r\nabc", ["malformed literal at position 6"]),
        ("TEXT {5", ["malformed literal at position 6"]),
        # invalid UTF-8 smuggled in a str
        ("TEXT a\udcff", ["invalid UTF-8", "position 7"]),
    ],
)
def test_query_errors(query, fragments):
    with pytest.raises(QueryError) as info:
        parse_query(query)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "key",
    "ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN KEYWORD "
    "UNKEYWORD BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE LARGER SMALLER UID MODSEQ OLDER YOUNGER "
    "X-GM-RAW X-MAILBOX X-GUID 1:* 1,3:5 * 42 $".split(),
)
def test_unsupported_keys_are_never_ignored(key):
    for query in (f"{key} x", f"TEXT a {key.lower()} 1-Jan-2020", f"OR ({key}) TEXT b", f"NOT {key}"):
        with pytest.raises(QueryError) as info:
            parse_query(query)
        assert f"unsupported search key {key} at position" in str(info.value)
        assert EVALUATED in str(info.value)
    with pytest.raises(QueryError, match="unsupported search key .* at argument 3"):
        parse_argv(["TEXT", "a", key, "x"])


def test_unsupported_message_matches_the_documented_form():
    with pytest.raises(QueryError) as info:
        parse_query("SINCE 1-Jan-2020")
    assert str(info.value) == f"unsupported search key SINCE at position 1 {EVALUATED}"


@pytest.mark.parametrize(
    "data, offset",
    [(b"TEXT \xff", 5), (b"TEXT caf\xc3", 8), (b"\xc3\xa9\xc3", 2), (b"TEXT {2}\r\n\xc3\x28", 10)],
)
def test_invalid_utf8_bytes(data, offset):
    with pytest.raises(QueryError, match=f"invalid UTF-8 at byte offset {offset}$"):
        parse_query(data)


@pytest.mark.parametrize(
    "argv, fragments",
    [
        ([], ["empty query"]),
        (["CHARSET", "UTF-8"], ["empty query after CHARSET"]),
        (["SUBJECT"], ["missing argument", "SUBJECT at argument 1", "end of the arguments"]),
        (["OR", "SUBJECT", "a"], ["missing argument", "OR at argument 1"]),
        (["(SUBJECT)"], ["missing argument", "SUBJECT at argument 1", "')' at argument 1"]),
        (["(", "SUBJECT", ")"], ["missing argument", "SUBJECT at argument 2", "')' at argument 3"]),
        (["SUBJECT", "("], ["missing argument", "SUBJECT at argument 1", "'(' at argument 2"]),
        (["(", "TEXT", "a"], ["unbalanced parenthesis", "'(' at argument 1"]),
        (["(TEXT", "a)"], ["unbalanced parenthesis", "'(' at argument 1", "part of the string"]),
        (["TEXT", "a", ")"], ["unbalanced parenthesis", "')' at argument 3"]),
        (["ALL))"], ["unbalanced parenthesis", "')' at argument 1"]),
        (["(", ")"], ["empty parentheses at argument 1"]),
        (["foo"], ["unknown search key 'foo' at argument 1"]),
        (["TEXT", "a", ""], ["unknown search key '' at argument 3"]),
        (["SUBJECT x"], ["unknown search key 'SUBJECT x' at argument 1"]),
        (["TEXT", "a", "(since", "x)"], ["unsupported search key SINCE at argument 3"]),
        (["HEADER", "a b", "x"], ["invalid header field name 'a b' at argument 2"]),
        (["CHARSET", "latin1", "TEXT", "x"], ["unsupported charset 'latin1' at argument 2"]),
        (["TEXT", "a", "CHARSET", "UTF-8"], ["CHARSET at argument 3 must come before"]),
        (["TEXT", "caf\udcc3"], ["invalid UTF-8 in argument 2"]),
    ],
)
def test_argv_errors(argv, fragments):
    with pytest.raises(QueryError) as info:
        parse_argv(argv)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
