#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Check that every include between tern's modules points down the layers.

The layers (DESIGN.md, "Layers"; include/tern/policy.h) from the top:
mains, policy, bindings, engine, foundation. A module is a core/NAME.c with
its include/tern/NAME.h. A file may include a header of its own layer or of a
lower one, never of a higher one; no engine or foundation file includes a
binding's lua_*.h. Every module is listed below (data, not guessed from its
name), so a new file fails here until it is given a layer.

Exits 1 and prints each violation as FILE:LINE: message.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAIN, POLICY, BINDING, ENGINE, FOUNDATION = 4, 3, 2, 1, 0
LAYER_NAMES = {MAIN: "main", POLICY: "policy", BINDING: "binding", ENGINE: "engine",
               FOUNDATION: "foundation"}

LAYERS = {
    # mains: the daemon and the operator's command line
    "ternd": MAIN, "tern": MAIN, "cli": MAIN, "cli_dkim": MAIN, "cli_spool": MAIN,
    "cli_import": MAIN, "cli_policy": MAIN, "cli_review": MAIN, "cli_tls": MAIN, "cli_classify": MAIN,
    "cli_reload": MAIN, "cli_suppress": MAIN,
    "cli_api": MAIN, "cli_top": MAIN,
    # policy: Lua states, the `tern` table that opens every binding, hook calls, config provider
    "policy": POLICY, "policy_config": POLICY, "lua_tern": POLICY,
    "policy_files": POLICY, "policy_revision": POLICY, "policy_reload": POLICY,
    "policy_watch": POLICY,
    # bindings: Lua tables <-> engine structs
    "lua_conn": BINDING, "lua_ctx": BINDING, "lua_dkim": BINDING, "lua_dns": BINDING,
    "lua_egress": BINDING, "lua_init": BINDING, "lua_json": BINDING, "lua_message": BINDING,
    "lua_options": BINDING, "lua_queue": BINDING, "lua_bounce": BINDING, "lua_fleet": BINDING,
    "lua_shaping": BINDING, "lua_warmup": BINDING, "lua_trace": BINDING,
    "lua_suppress": BINDING,
    "lua_kafka": BINDING,
    "lua_http": BINDING, "lua_loghook": BINDING, "lua_crypto": BINDING,
    # engine: what tern does; it asks policy through config and calls hooks through policy_hook
    "config": ENGINE, "conn": ENGINE, "dkim": ENGINE, "dns": ENGINE, "egress": ENGINE,
    "egress_route": ENGINE, "logrec": ENGINE, "message": ENGINE, "outcome": ENGINE, "penalty": ENGINE,
    "policy_hook": ENGINE, "queue": ENGINE, "reception": ENGINE, "smtp_client": ENGINE,
    "smtp_listener": ENGINE, "smtp_limits": ENGINE, "smtp_proto": ENGINE, "smtp_server": ENGINE, "spool": ENGINE, "spool_id": ENGINE, "spool_kept": ENGINE, "spool_health": ENGINE, "spool_scan": ENGINE, "spool_layout": ENGINE,
    "throttle": ENGINE, "http_server": ENGINE, "http_routes": ENGINE, "api_inject": ENGINE,
    "inject": ENGINE, "mime_build": ENGINE, "template": ENGINE, "pmta_conf": ENGINE,
    "proxy_proto": ENGINE, "bounce": ENGINE, "regex_rules": ENGINE, "admin": ENGINE, "api_admin": ENGINE,
    "fleet": ENGINE, "fleet_limit": ENGINE, "fleet_table": ENGINE, "fleet_lease": ENGINE, "limiter_fleet": ENGINE, "fleet_quota": ENGINE, "fleet_shaping": ENGINE, "fleet_suppress": ENGINE, "redis": ENGINE,
    "automation": ENGINE, "path_state": ENGINE, "limiter": ENGINE,
    "api_metrics": ENGINE, "status_page": ENGINE,
    "warmup": ENGINE, "api_warmup": ENGINE,
    "mime_parse": ENGINE, "oob": ENGINE, "arf": ENGINE, "trace_ref": ENGINE,
    "dsn": ENGINE, "dsn_send": ENGINE, "report_intake": ENGINE,
    "suppress": ENGINE, "api_suppress": ENGINE, "bounce_route": ENGINE, "suppress_index": ENGINE,
    "acct_csv": ENGINE, "kafka": ENGINE,
    "http_client": ENGINE, "loghook": ENGINE,
    # foundation: threads, loops, I/O, logging, helpers
    "cidr": FOUNDATION, "coro": FOUNDATION, "daemon": FOUNDATION, "io": FOUNDATION,
    "json": FOUNDATION, "log": FOUNDATION, "logfile": FOUNDATION, "mailbox": FOUNDATION,
    "shard": FOUNDATION, "tls": FOUNDATION, "util": FOUNDATION, "util_heap": FOUNDATION,
    "util_map": FOUNDATION, "watchdog": FOUNDATION, "notify": FOUNDATION, "privdrop": FOUNDATION,
    "util_acmatch": FOUNDATION, "util_csv": FOUNDATION,
    "util_map": FOUNDATION, "watchdog": FOUNDATION,
    "metrics": FOUNDATION,
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"tern/([A-Za-z0-9_]+)\.h"')


def sources():
    for d, ext in (("core", ".c"), ("include/tern", ".h")):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(ext):
                yield os.path.join(d, name), name[: -len(ext)]


def check_file(path, module):
    errors = []
    if module not in LAYERS:
        return [f"{path}:1: module '{module}' has no layer in tests/check-layers.py"]
    mine = LAYERS[module]
    with open(os.path.join(ROOT, path)) as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m or m.group(1) == module:
                continue
            dep = m.group(1)
            if dep not in LAYERS:
                errors.append(f"{path}:{lineno}: includes tern/{dep}.h, which has no layer")
            elif mine <= ENGINE and dep.startswith("lua_"):
                errors.append(f"{path}:{lineno}: {LAYER_NAMES[mine]} file includes the "
                              f"binding header tern/{dep}.h")
            elif LAYERS[dep] > mine:
                errors.append(f"{path}:{lineno}: {LAYER_NAMES[mine]} file includes "
                              f"tern/{dep}.h of the higher {LAYER_NAMES[LAYERS[dep]]} layer")
    return errors


def main():
    errors = [e for path, module in sources() for e in check_file(path, module)]
    for e in errors:
        print(e)
    print(f"check-layers: {len(errors)} violation(s)" if errors else "check-layers: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
