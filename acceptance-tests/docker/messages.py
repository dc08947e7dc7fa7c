#!/usr/bin/env python3
"""Small helpers for docker-images.sh: read Airbyte messages (one JSON object a line) and
image metadata. Lines that are not JSON objects are ignored, as the platform and CAT do."""
import json
import re
import sys


def messages(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and "type" in value:
                out.append(value)
    return out


def of_type(path, kind):
    return [m for m in messages(path) if m["type"] == kind]


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "count":  # count TYPE FILE
        print(len(of_type(args[1], args[0])))
    elif cmd == "status":  # status FILE: the CONNECTION_STATUS status, or NONE
        found = of_type(args[0], "CONNECTION_STATUS")
        print(found[0]["connectionStatus"]["status"] if len(found) == 1 else f"NONE({len(found)})")
    elif cmd == "trace-errors":  # trace-errors FILE: the messages of TRACE ERRORs
        for m in of_type(args[0], "TRACE"):
            if m["trace"].get("type") == "ERROR":
                print(m["trace"]["error"].get("message"))
    elif cmd == "spec-ok":  # spec-ok FILE: one SPEC with a connectionSpecification object
        found = of_type(args[0], "SPEC")
        ok = len(found) == 1 and isinstance(found[0]["spec"].get("connectionSpecification"), dict)
        sys.exit(0 if ok else 1)
    elif cmd == "configured-catalog":  # configured-catalog DISCOVER_OUT: every stream, full refresh
        catalogs = of_type(args[0], "CATALOG")
        streams = catalogs[0]["catalog"]["streams"]
        print(json.dumps({"streams": [
            {"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "append"}
            for s in streams]}))
    elif cmd == "stream-names":  # stream-names DISCOVER_OUT
        print(" ".join(s["name"] for s in of_type(args[0], "CATALOG")[0]["catalog"]["streams"]))
    elif cmd == "record-streams":  # record-streams READ_OUT: the streams that had records
        print(" ".join(sorted({m["record"]["stream"] for m in of_type(args[0], "RECORD")})))
    elif cmd == "input-state":  # input-state READ_OUT: the last state of each stream, as a list
        last = {}
        for m in of_type(args[0], "STATE"):
            state = m["state"]
            if state.get("type") == "STREAM":
                d = state["stream"]["stream_descriptor"]
                last[(d.get("namespace"), d["name"])] = state
            else:
                last[("", state.get("type"))] = state
        print(json.dumps(list(last.values())))
    elif cmd == "metadata":  # metadata FILE KEY: a `data.KEY: value` of metadata.yaml
        # metadata.yaml is flat where these keys live; no YAML library needed.
        with open(args[0], encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^  " + re.escape(args[1]) + r":\s*(.+?)\s*$", line)
                if m:
                    print(m.group(1).strip("'\""))
                    return
        sys.exit(f"{args[1]} not found in {args[0]}")
    elif cmd == "inspect":  # inspect INSPECT_JSON FIELD: label:NAME, env:NAME, entrypoint, user
        config = json.load(open(args[0], encoding="utf-8"))[0]["Config"]
        field = args[1]
        if field.startswith("label:"):
            print((config.get("Labels") or {}).get(field[6:], ""))
        elif field.startswith("env:"):
            for item in config.get("Env") or []:
                name, _, value = item.partition("=")
                if name == field[4:]:
                    print(value)
        elif field == "entrypoint":
            print(" ".join(config.get("Entrypoint") or []))
        elif field == "user":
            print(config.get("User", ""))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
