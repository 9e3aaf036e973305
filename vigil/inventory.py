"""Load an Ansible inventory with ansible-core's own loader into a validated `Inventory`.

group_vars/, host_vars/, Jinja2 templating and vault behave exactly as for
`ansible-playbook`. Every problem becomes one `InventoryError` naming the file (and line),
the host or group, and the field.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from vigil.checks.base import BindContext, BindError
from vigil.checks.registry import known_kinds, probe_for
from vigil.errors import first_line
from vigil.files import FileRefused, read_bounded
from vigil.model import (
    CheckDefaults,
    CheckSpec,
    Host,
    HostVars,
    Inventory,
    SiteVars,
    SshTarget,
    System,
    ZabbixVars,
)
from vigil.runbook import RunbookError, site_runbook
from vigil.secrets import SecretInvalid

M = TypeVar("M", bound=BaseModel)

# Ansible must fail loudly on an unparsable source instead of warning and going on empty.
_ANSIBLE_ENV = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    "ANSIBLE_INVENTORY_ENABLED": "yaml,ini,toml",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_NOCOLOR": "True",
}


class InventoryError(Exception):
    """A broken inventory: one message naming where and what."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None,
                 field: str | None = None) -> None:
        self.message, self.file, self.where, self.field = message, file, where, field
        parts = [p for p in (file, where, f"field {field}" if field else None) if p]
        super().__init__(": ".join([*parts, message]))


def load_inventory(path: str | os.PathLike[str], *,
                   vault_password_file: str | None = None) -> Inventory:
    root = Path(path)
    if not root.exists():
        raise InventoryError("no such inventory file or directory", file=str(root))
    _prescan(root)
    for key, value in _ANSIBLE_ENV.items():
        os.environ.setdefault(key, value)

    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    _setup_vault(loader, vault_password_file or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"))
    # ansible-core warns in blocks of a dozen lines; Vigil says what is wrong in one.
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            manager = InventoryManager(loader=loader, sources=[str(root)])
            variables = VariableManager(loader=loader, inventory=manager)
            raw_hosts = {h.name: (h, variables.get_vars(host=h, include_hostvars=False))
                         for h in manager.get_hosts()}
    except AnsibleError as exc:
        raise _from_ansible(exc, root) from None
    if not raw_hosts:
        raise InventoryError("the inventory defines no hosts", file=str(root))
    return _build(root, loader, raw_hosts)


def _setup_vault(loader: Any, password_file: str | None) -> None:
    secrets: list[Any] = []
    if password_file:
        from ansible.parsing.vault import VaultSecret

        try:
            secret = read_bounded(password_file, 64 * 1024, "vault password file").strip()
        except FileRefused as exc:
            raise InventoryError(str(exc)) from None
        secrets = [("default", VaultSecret(secret))]
        loader.set_vault_secrets(secrets)
    try:  # ansible-core >= 2.19 decrypts through a process-wide context, set once
        from ansible.parsing.vault import VaultSecretsContext
    except ImportError:
        return
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:  # this inventory's password, not the one an earlier load in this process gave
        current.secrets = secrets


def _from_ansible(exc: Exception, root: Path) -> InventoryError:
    text = str(getattr(exc, "message", "") or exc)
    first = first_line(text, type(exc).__name__)
    broken = _first_broken_yaml(root)
    if broken:  # ansible does not always say which file; YAML itself can
        file, problem = broken
        return InventoryError(f"cannot parse: {problem}", file=file,
                              where=_where_from_file(file + ":"))
    origin = _origin(getattr(exc, "obj", None))
    match = re.search(r"(/[^\s:'\"]+\.(?:ya?ml|json|ini|toml))", text)
    file = origin or (_rel(match.group(1)) if match else str(root))
    return InventoryError(f"cannot parse: {first}", file=file)


MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 100_000  # after YAML aliases are expanded: "billion laughs" stops here
MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 40


def _prescan(root: Path) -> None:
    """Before ansible-core reads anything: only regular files of sane size, and YAML whose
    nesting, alias expansion and numbers are bounded (ansible-core would hang or crash)."""
    import yaml

    entries = [root] if not root.is_dir() else sorted(root.rglob("*"))
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            continue
        if not path.is_file():
            raise InventoryError("not a regular file (a pipe or device would hang the "
                                 "loader)", file=_rel(str(path)))
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InventoryError(f"larger than {MAX_FILE_BYTES // 1024} KiB",
                                 file=_rel(str(path)))
        if path.suffix not in (".yml", ".yaml", ".json") and path is not root:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            for doc in yaml.compose_all(text, Loader=getattr(yaml, "CSafeLoader",
                                                              yaml.SafeLoader)):
                if doc is not None:
                    _bounded(doc, path)
        except RecursionError:
            raise InventoryError(f"nested deeper than {MAX_DEPTH} levels",
                                 file=_rel(str(path))) from None
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            continue  # ansible-core says what is wrong, and _first_broken_yaml where


def _bounded(doc: Any, path: Path) -> None:
    """Walk a composed YAML document without recursion: expanded size, depth and number
    lengths, each alias counted as often as it is used."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(doc, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        where = f"{_rel(str(path))}:{node.start_mark.line + 1}"
        if depth > MAX_DEPTH:
            raise InventoryError(f"nested deeper than {MAX_DEPTH} levels", file=where)
        if isinstance(node, yaml.ScalarNode):
            if node.tag.endswith((":int", ":float")) and len(node.value) > MAX_NUMBER_DIGITS:
                raise InventoryError(f"a number of {len(node.value)} digits", file=where)
            sizes[id(node)] = 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(
            node, yaml.MappingNode) else list(node.value)
        if done:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_VALUES:
                raise InventoryError(f"expands to more than {MAX_VALUES} values (YAML "
                                     f"aliases?)", file=where)
            continue
        if id(node) in sizes:
            continue
        if id(node) in on_path:
            raise InventoryError("a YAML alias refers to itself", file=where)
        on_path.add(id(node))
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def _first_broken_yaml(root: Path) -> tuple[str, str] | None:
    import yaml

    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    for path in files:
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark else ""
            return f"{_rel(str(path))}{line}", f"{exc.problem or exc.context or 'invalid YAML'}"
        except RecursionError:
            return _rel(str(path)), f"nested deeper than {MAX_DEPTH} levels"
        except (yaml.YAMLError, UnicodeDecodeError, OSError, ValueError) as exc:
            return _rel(str(path)), f"unreadable ({type(exc).__name__})"
    return None


def _build(root: Path, loader: Any, raw_hosts: dict[str, tuple[Any, dict[str, Any]]]) -> Inventory:
    _first_host, (_, first_vars) = next(iter(raw_hosts.items()))
    site_raw = _pick(first_vars, tuple(SiteVars.model_fields))  # every site variable
    site_vars = _validate(SiteVars, _templated(loader, first_vars, site_raw), site_raw, root,
                          where="group 'all'")
    parties = {p.id: p for p in site_vars.vigil_parties}
    try:  # built once: what messages quote, the executor runs and the CLI prints
        plan = site_runbook(site_vars.vigil_runbook.overrides, site_vars.vigil_runbook.add)
    except RunbookError as exc:
        _fail(site_raw, ("vigil_runbook",), root, "group 'all'", str(exc))
    for i, library in enumerate(site_vars.vigil_voucher_libraries):
        if library.party not in parties:
            _fail(site_raw, ("vigil_voucher_libraries", i, "party"), root, "group 'all'",
                  f"unknown party {library.party!r}")
    for i, contact in enumerate(site_vars.vigil_contacts):
        if contact.party not in parties:
            _fail(site_raw, ("vigil_contacts", i, "party"), root, "group 'all'",
                  f"unknown party {contact.party!r} (known: {', '.join(parties)})")

    hosts: dict[str, Host] = {}
    systems: dict[str, System] = {}
    checks: list[CheckSpec] = []
    declared: dict[str, tuple[str, dict[str, Any]]] = {}  # system id -> (host, raw vars)
    host_vars: dict[str, tuple[HostVars, dict[str, Any]]] = {}
    for name, (host, all_vars) in raw_hosts.items():
        raw = _pick(all_vars, ("ansible_host", "ansible_connection", "ansible_port",
                               "ansible_user", "ansible_ssh_private_key_file",
                               "ansible_password", "vigil_known_hosts", "vigil_party",
                               "vigil_systems", "vigil_pg_port", "vigil_fence",
                               "vigil_self_fence"))
        where = f"host {name!r}"
        hv = _validate(HostVars, _templated(loader, all_vars, raw), raw, root, where=where)
        if hv.vigil_party and hv.vigil_party not in parties:
            _fail(raw, ("vigil_party",), root, where, f"unknown party {hv.vigil_party!r}")
        address = hv.ansible_host or name
        ssh = None if hv.ansible_connection == "local" else SshTarget(
            address=address, port=hv.ansible_port or 22, user=hv.ansible_user or "root",
            key_file=hv.ansible_ssh_private_key_file, password=hv.ansible_password,
            known_hosts=hv.vigil_known_hosts)
        hosts[name] = Host(name=name, address=address, party=hv.vigil_party,
                           groups=tuple(g.name for g in host.get_groups()), ssh=ssh,
                           pg_port=hv.vigil_pg_port, fence=hv.vigil_fence,
                           self_fence=hv.vigil_self_fence)
        host_vars[name] = (hv, raw)

    # Systems second: a check may refer to other hosts (e.g. a backup copy elsewhere).
    for name, (hv, raw) in host_vars.items():
        where = f"host {name!r}"
        for i, s in enumerate(hv.vigil_systems):
            if s.id in declared:
                _fail(raw, ("vigil_systems", i, "id"), root, where,
                      f"system {s.id!r} is also declared on host {declared[s.id][0]!r}")
            declared[s.id] = (name, raw)
            party = s.party or hv.vigil_party
            if party is None or party not in parties:
                _fail(raw, ("vigil_systems", i, "party"), root, where,
                      f"system {s.id!r} has no known party (set vigil_party or party)")
            known = {c.id for c in site_vars.vigil_contacts}
            for k, owner in enumerate(s.owners):
                if owner not in known:
                    _fail(raw, ("vigil_systems", i, "owners", k), root, where,
                          f"owner {owner!r} of system {s.id!r} is not in vigil_contacts")
            names = []
            for j, c in enumerate(s.checks):
                spec = _check_spec(raw, root, where, (i, j), hosts, name, s, c, checks,
                                   site_vars.vigil_check_defaults, site_vars.vigil_zabbix)
                checks.append(spec)
                names.append(spec.name)
            systems[s.id] = System(id=s.id, name=s.name, fault_class=s.fault_class,
                                   party=party, host=name, depends_on=tuple(s.depends_on),
                                   checks=tuple(names), owners=tuple(s.owners))

    for sid, system in systems.items():
        host_name, raw = declared[sid]
        index = next(i for i, s in enumerate(raw["vigil_systems"]) if s["id"] == sid)
        for k, dep in enumerate(system.depends_on):
            if dep not in systems:
                _fail(raw, ("vigil_systems", index, "depends_on", k), root,
                      f"host {host_name!r}", f"depends on unknown system {dep!r}")
    _refuse_cycles(systems, declared, root)
    return Inventory(path=str(root), site=site_vars.vigil_site, parties=parties,
                     contacts=site_vars.vigil_contacts, hosts=hosts, systems=systems,
                     checks=checks, escalation=site_vars.vigil_escalation,
                     calendar=site_vars.vigil_calendar, ladder=site_vars.vigil_ladder,
                     voucher_libraries=site_vars.vigil_voucher_libraries,
                     runbook=site_vars.vigil_runbook, site_runbook=plan,
                     project_dir=site_vars.vigil_project_dir,
                     heartbeat=site_vars.vigil_heartbeat, zabbix=site_vars.vigil_zabbix,
                     console=site_vars.vigil_console,
                     drill_interval_days=site_vars.vigil_drill_interval_days)


def _check_spec(raw: dict[str, Any], root: Path, where: str, at: tuple[int, int],
                hosts: dict[str, Host], host_name: str, system: Any, check: Any,
                existing: list[CheckSpec], defaults: CheckDefaults,
                zabbix: ZabbixVars | None) -> CheckSpec:
    i, j = at
    host = hosts[host_name]
    if check.kind not in known_kinds():
        _fail(raw, ("vigil_systems", i, "checks", j, "kind"), root, where,
              f"unknown check kind {check.kind!r} (known: {', '.join(known_kinds())})")
    probe = probe_for(check.kind)
    at_params = ("vigil_systems", i, "checks", j, "params")
    try:
        params = probe.bind(probe.Params.model_validate(check.params),
                            BindContext({n: h.ssh for n, h in hosts.items()}, zabbix))
    except ValidationError as exc:
        err = exc.errors()[0]
        _fail(raw, (*at_params, *err["loc"]), root, where, _pydantic_message(err))
    except BindError as exc:
        _fail(raw, (*at_params, *exc.loc), root, where, exc.message)
    name = check.name or f"{system.id}.{check.kind}"
    taken = {c.name for c in existing}
    if check.name and name in taken:
        _fail(raw, ("vigil_systems", i, "checks", j, "name"), root, where,
              f"check name {name!r} is used twice")
    n = 2
    while name in taken:
        name, n = f"{system.id}.{check.kind}.{n}", n + 1
    return CheckSpec(name=name, kind=check.kind, system=system.id,
                     fault_class=system.fault_class, host=host.name, address=host.address,
                     ssh=host.ssh, params=params,
                     interval_s=check.interval or probe.interval_s or defaults.interval,
                     timeout_s=check.timeout or probe.timeout_s or defaults.timeout)


def _refuse_cycles(systems: dict[str, System], declared: dict[str, tuple[str, dict[str, Any]]],
                   root: Path) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(sid: str, path: list[str]) -> None:
        if state.get(sid) == 2:
            return
        if state.get(sid) == 1:
            host, raw = declared[sid]
            index = next(i for i, s in enumerate(raw["vigil_systems"]) if s["id"] == sid)
            cycle = " -> ".join([*path[path.index(sid):], sid])
            _fail(raw, ("vigil_systems", index, "depends_on"), root, f"host {host!r}",
                  f"dependency cycle: {cycle}")
        state[sid] = 1
        for dep in systems[sid].depends_on:
            visit(dep, [*path, sid])
        state[sid] = 2

    for sid in systems:
        visit(sid, [])


def _pick(all_vars: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: all_vars[k] for k in keys if k in all_vars}


def _templated(loader: Any, all_vars: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Render Jinja2 in plain strings; vault values stay encrypted until a probe needs them."""
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=all_vars)

    def render(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, str) and "{{" in value:
            try:
                return templar.template(value)
            except AnsibleError as exc:
                raise InventoryError(f"template error: {str(exc).splitlines()[0]}",
                                     file=_origin(value)) from None
        return value

    return render(raw)


def _validate(model: type[M], data: dict[str, Any], raw: dict[str, Any], root: Path, *,
              where: str) -> M:
    """Validate templated `data`; locate errors in `raw`, whose values carry their origin."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A misspelt key shows as "not a known field" plus "missing": the first explains both.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        err = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        _fail(raw, tuple(err["loc"]), root, where,
              _pydantic_message(err) + (more if len(errors) > 1 else ""))


def _pydantic_message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in ("missing",):
        return "is required but missing"
    if err["type"] == "extra_forbidden":
        return "is not a known field"
    if isinstance(err.get("ctx", {}).get("error"), SecretInvalid):
        return msg  # what was given in a secret's place may be a secret itself
    if "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        shown = err["input"]
        if isinstance(shown, str) and len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {shown!r})"
    return msg


def _fail(raw: Any, loc: tuple[Any, ...], root: Path, where: str, message: str) -> NoReturn:
    node, file = raw, None
    for part in loc:
        file = _origin(node) or file
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    file = _origin(node) or file
    if file is None:
        file = str(root)
    else:
        declared_in = _where_from_file(file)
        if declared_in and declared_in != where:
            where = f"{declared_in} (seen by {where})" if where.startswith("host") else declared_in
    raise InventoryError(message, file=file, where=where, field=_dotted(loc))


def _where_from_file(file: str) -> str | None:
    match = re.search(r"(group|host)_vars/([^/:]+?)(?:\.ya?ml|\.json)?(?:/|:)", file)
    return f"{match.group(1)} {match.group(2)!r}" if match else None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _origin(value: Any) -> str | None:
    if value is None:
        return None
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # ansible-core < 2.19 has no origin tags
        return None
    origin = Origin.get_tag(value)
    if origin is None or not origin.path:
        return None
    where = _rel(origin.path)
    return f"{where}:{origin.line_num}" if origin.line_num else where


def _rel(path: str) -> str:
    """Relative to the working directory when below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
