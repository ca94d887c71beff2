"""ldap userdb: users from a directory, configured with Dovecot's dovecot-ldap.conf.ext (userdb.args names it,
so ftsd can read the very file Dovecot uses).

Keys read: `uris` (or `hosts`), `dn`, `dnpass` (or userdb.password_file), `tls` (StartTLS), `tls_ca_cert_file`,
`tls_ca_cert_dir`, `tls_cert_file`, `tls_key_file`, `tls_require_cert`, `ldap_version`, `base`, `scope`, `deref`,
`user_filter`, `user_attrs`, `iterate_filter`, `iterate_attrs`; passdb-only keys are accepted and ignored,
anything else is an error (a typo must not change which users exist). Attribute maps are Dovecot's:
`homeDirectory=home,uidNumber=uid` or `=home=/srv/mail/%{ldap:uid}`; filters expand %u %n %d %s (escaped).

`-A` is one paged search with iterate_filter that also fetches the user_attrs, so a run over every user asks
the directory once, not once per user; a single user is looked up with user_filter.
Client library: python-ldap (OpenLDAP's libldap, the library Dovecot itself uses: same URIs, ldapi://, TLS
options and ldap.conf; maintained). Imported only when this driver is configured.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsd.errors import ConfigError
from ftsd.settings import Settings
from ftsd.userdb.base import Userdb, UserRecord, to_id

DEFAULTS = {
    "scope": "subtree", "deref": "never", "ldap_version": "3", "tls": "no",
    "user_filter": "(&(objectClass=posixAccount)(uid=%u))",
    "user_attrs": "homeDirectory=home,uidNumber=uid,gidNumber=gid",
    "iterate_filter": "(objectClass=posixAccount)", "iterate_attrs": "",
}
_USED = {"uris", "hosts", "dn", "dnpass", "tls", "tls_ca_cert_file", "tls_ca_cert_dir", "tls_cert_file",
         "tls_key_file", "tls_require_cert", "ldap_version", "base", "scope", "deref", "user_filter", "user_attrs",
         "iterate_filter", "iterate_attrs"}
_IGNORED = {"pass_attrs", "pass_filter", "auth_bind", "auth_bind_userdn", "default_pass_scheme", "blocking",
            "debug_level", "tls_cipher_suite", "sasl_bind", "sasl_mech", "sasl_realm", "sasl_authz_id",
            "tls_key_file", "ldaprc_path"}
_LDAP_VAR = re.compile(r"%\{ldap:([A-Za-z0-9;.-]+)(?::([^}]*))?\}")
PAGE_SIZE = 1000


def read_conf(path: Path) -> dict[str, str]:
    """`key = value` lines of a dovecot-ldap.conf.ext (`#` comments). Raises: ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"userdb ldap {path}: {exc.strerror or exc}") from None
    conf = dict(DEFAULTS)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in _USED | _IGNORED:
            raise ConfigError(f"userdb ldap {path} line {number}: unknown setting {key!r}")
        if key == "sasl_bind" and value.strip().lower() in ("yes", "y", "1"):
            raise ConfigError(f"userdb ldap {path} line {number}: sasl_bind is not supported; use dn and dnpass")
        conf[key] = value.strip().strip('"')
    if not conf.get("base"):
        raise ConfigError(f"userdb ldap {path}: base is required")
    if not conf.get("uris") and not conf.get("hosts"):
        raise ConfigError(f"userdb ldap {path}: uris (or hosts) is required")
    return conf


@dataclass(frozen=True, slots=True)
class AttrMap:
    """Dovecot's `ldapAttr=field` and `=field=template` list: which userdb field comes from where."""

    direct: dict[str, str] = field(default_factory=dict)  # ldap attribute (lowercase) -> field
    templates: dict[str, str] = field(default_factory=dict)  # field -> template with %{ldap:attr}

    @classmethod
    def parse(cls, text: str) -> AttrMap:
        direct, templates = {}, {}
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            attr, _, rest = item.partition("=")
            name, _, template = rest.partition("=")
            if template or not attr:
                templates[name or attr] = template or "%{ldap:" + attr + "}"
            else:
                direct[attr.lower()] = name or attr
        return cls(direct, templates)

    def attributes(self) -> set[str]:
        """The LDAP attributes to request."""
        wanted = set(self.direct)
        for template in self.templates.values():
            wanted |= {m.group(1).lower() for m in _LDAP_VAR.finditer(template)}
        return wanted

    def fields(self, entry: dict[str, list[bytes]], user: str) -> dict[str, str]:
        """The userdb fields of one entry (first value of each attribute)."""
        values = {k.lower(): v[0].decode("utf-8", "replace") for k, v in entry.items() if v}
        out = {name: values[attr] for attr, name in self.direct.items() if attr in values}
        for name, template in self.templates.items():
            out[name] = _expand(_LDAP_VAR.sub(lambda m: values.get(m.group(1).lower(), m.group(2) or ""), template),
                                user, escape=False)
        return out


def _expand(template: str, user: str, *, escape: bool, service: str = "doveadm") -> str:
    """Dovecot's %u %n %d %s (and %{user} ...) in a filter (values LDAP-escaped) or a field template."""
    from ldap.filter import escape_filter_chars

    local, _, domain = user.partition("@")
    values = {"u": user, "user": user, "n": local, "username": local, "d": domain, "domain": domain,
              "s": service, "service": service, "%": "%"}

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1) or match.group(2), match.group(0))
        return escape_filter_chars(value) if escape and value != "%" else value
    return re.sub(r"%(?:\{([a-z]+)\}|([unds%]))", one, template)


class LdapUserdb(Userdb):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = settings.resolve(settings.userdb.args)
        self.where = f"LDAP ({settings.userdb.args})"
        self.conf = read_conf(self.path)
        self.user_attrs = AttrMap.parse(self.conf["user_attrs"])
        self.iterate_attrs = AttrMap.parse(self.conf["iterate_attrs"])
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        try:
            import ldap  # noqa: F401
        except ImportError:
            raise ConfigError("userdb ldap needs python-ldap: pip install 'ftsd[ldap]' (and apt-get install "
                              "libldap-dev libsasl2-dev to build it)") from None

    def _password(self) -> str:
        if self.settings.userdb.password_file:
            path = self.settings.resolve(self.settings.userdb.password_file)
            try:
                return path.read_text(encoding="utf-8").strip("\r\n")
            except OSError as exc:
                raise ConfigError(f"userdb.password_file {path}: {exc.strerror or exc}") from None
        return self.conf.get("dnpass", "")

    def _connect(self) -> Any:
        import ldap

        conf, timeout = self.conf, self.settings.userdb.timeout_s
        uris = conf.get("uris") or " ".join(h if "://" in h else f"ldap://{h}" for h in conf["hosts"].split())
        try:
            conn = ldap.initialize(uris)
        except ldap.LDAPError as exc:
            raise ConfigError(f"userdb ldap {self.path}: uris {uris!r}: {_reason(exc)}") from None
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, int(conf["ldap_version"]))
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_TIMEOUT, timeout)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_DEREF, {"never": ldap.DEREF_NEVER, "searching": ldap.DEREF_SEARCHING,
                                         "finding": ldap.DEREF_FINDING, "always": ldap.DEREF_ALWAYS
                                         }.get(conf["deref"], ldap.DEREF_NEVER))
        tls_options = {"tls_ca_cert_file": ldap.OPT_X_TLS_CACERTFILE, "tls_ca_cert_dir": ldap.OPT_X_TLS_CACERTDIR,
                       "tls_cert_file": ldap.OPT_X_TLS_CERTFILE, "tls_key_file": ldap.OPT_X_TLS_KEYFILE}
        for key, option in tls_options.items():
            if conf.get(key):
                conn.set_option(option, conf[key])
        if conf.get("tls_require_cert"):
            levels = {"never": ldap.OPT_X_TLS_NEVER, "allow": ldap.OPT_X_TLS_ALLOW, "try": ldap.OPT_X_TLS_TRY,
                      "demand": ldap.OPT_X_TLS_DEMAND, "hard": ldap.OPT_X_TLS_HARD}
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, levels.get(conf["tls_require_cert"], ldap.OPT_X_TLS_DEMAND))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if conf["tls"].lower() in ("yes", "y", "1"):
                conn.start_tls_s()
            conn.simple_bind_s(conf.get("dn", ""), self._password())
        except ldap.LDAPError as exc:
            raise ConfigError(f"userdb ldap {uris}: bind as {conf.get('dn') or 'anonymous'}: {_reason(exc)}"
                              ) from None
        return conn

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                try:
                    self._conn.unbind_s()
                except Exception:  # already gone: nothing to release
                    pass
                self._conn = None

    def _search(self, filterstr: str, attributes: set[str]) -> list[dict[str, list[bytes]]]:
        """Every entry under base matching the filter (paged, so a server size limit per page does not cut the
        list), retried once on a fresh connection. Raises: ConfigError."""
        import ldap
        from ldap.controls import SimplePagedResultsControl

        scope = {"base": ldap.SCOPE_BASE, "onelevel": ldap.SCOPE_ONELEVEL, "subtree": ldap.SCOPE_SUBTREE
                 }.get(self.conf["scope"], ldap.SCOPE_SUBTREE)
        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    entries: list[dict[str, list[bytes]]] = []
                    page = SimplePagedResultsControl(True, size=PAGE_SIZE, cookie="")
                    while True:
                        msgid = self._conn.search_ext(self.conf["base"], scope, filterstr, sorted(attributes) or None,
                                                      serverctrls=[page])
                        _, data, _, controls = self._conn.result3(msgid, timeout=self.settings.userdb.timeout_s)
                        entries += [attrs for dn, attrs in data if dn]
                        cookie = next((c.cookie for c in controls
                                       if c.controlType == SimplePagedResultsControl.controlType), b"")
                        if not cookie:
                            return entries
                        page.cookie = cookie
                except (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT) as exc:
                    self._conn = None
                    if attempt == 2:
                        raise ConfigError(f"userdb ldap {self.conf.get('uris') or self.conf.get('hosts')}: "
                                          f"{_reason(exc)}") from None
                except ldap.LDAPError as exc:
                    raise ConfigError(f"userdb ldap: search {filterstr!r} under {self.conf['base']}: "
                                      f"{_reason(exc)}") from None
        raise AssertionError("unreachable")

    def _record(self, name: str, values: dict[str, str]) -> UserRecord:
        return UserRecord(name, values.get("home") or None, values.get("mail") or None, to_id(values.get("uid")),
                          to_id(values.get("gid")))

    def _list(self) -> list[str]:
        if "user" not in set(self.iterate_attrs.direct.values()) | set(self.iterate_attrs.templates):
            raise ConfigError(f"userdb ldap {self.path}: iterate_attrs must map an attribute to user "
                              "(e.g. iterate_attrs = uid=user) to list users")
        entries = self._search(self.conf["iterate_filter"],
                               self.iterate_attrs.attributes() | self.user_attrs.attributes())
        names, records = [], []
        for entry in entries:
            name = self.iterate_attrs.fields(entry, "").get("user")
            if name:
                names.append(name)
                records.append(self._record(name, self.user_attrs.fields(entry, name)))
        self._prime(records)
        return names

    def _fetch(self, name: str) -> UserRecord | None:
        filterstr = _expand(self.conf["user_filter"], name, escape=True, service=self.settings.userdb.service)
        entries = self._search(filterstr, self.user_attrs.attributes())
        if not entries:
            return None
        return self._record(name, self.user_attrs.fields(entries[0], name))


def _reason(exc: Exception) -> str:
    """python-ldap puts a dict with `desc` (and `info`) in args[0]; one line of it."""
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, dict):
        return "; ".join(str(detail[k]) for k in ("desc", "info") if detail.get(k))
    return str(detail)
