#!/usr/bin/env python3
"""A JSON-lines worker: one long-lived process serving many activities.

dispatch writes one request line per activity on stdin and reads one
response line per activity from stdout (docs/workers.md). Activities run in
threads, so several are in flight at once; a cancel line stops the one it
names; at EOF the worker finishes what it has and exits.

    dispatch worker --channel default/py --max-in-flight 8 --serve -- python3 examples/python/worker.py

Activity types:
  upper  input {"text": "..."} -> {"text": "..."} upper-cased;
         a non-JSON input (input_base64) is upper-cased as bytes.
  add    input {"numbers": [...]} -> {"sum": ...}
  sleep  input {"seconds": N} -> {"slept": N}; a cancel line ends it early.
Standard library only.
"""

import base64
import json
import sys
import threading

out_lock = threading.Lock()
cancels = {}  # id -> threading.Event, for the activities in flight
cancels_lock = threading.Lock()


def reply(obj):
    line = json.dumps(obj, separators=(",", ":"))
    with out_lock:  # one whole line at a time
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run(req, cancelled):
    kind = req.get("activity_type")
    if kind == "upper":
        if "input_base64" in req:
            data = base64.b64decode(req["input_base64"]).upper()
            return {"output_base64": base64.b64encode(data).decode(),
                    "content_type": req.get("content_type") or "application/octet-stream"}
        return {"output": {"text": req["input"]["text"].upper()}}
    if kind == "add":
        return {"output": {"sum": sum(req["input"]["numbers"])}}
    if kind == "sleep":
        seconds = req["input"]["seconds"]
        if cancelled.wait(seconds):
            raise RuntimeError("cancelled")
        return {"output": {"slept": seconds}}
    raise ValueError("unknown activity type %r" % kind)


def handle(req, cancelled):
    try:
        answer = run(req, cancelled)
        answer.update(id=req["id"], status="completed")
    except Exception as e:  # the activity fails; the worker carries on
        answer = {"id": req["id"], "status": "failed", "error": "%s: %s" % (type(e).__name__, e)}
    finally:
        with cancels_lock:
            cancels.pop(req["id"], None)
    if not cancelled.is_set():  # a cancelled activity's answer would be refused
        reply(answer)


def main():
    threads = []
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("type") == "cancel":
            with cancels_lock:
                ev = cancels.get(req["id"])
            if ev is not None:
                ev.set()
            continue
        ev = threading.Event()
        with cancels_lock:
            cancels[req["id"]] = ev
        t = threading.Thread(target=handle, args=(req, ev))
        t.start()
        threads.append(t)
        threads = [t for t in threads if t.is_alive()]
    for t in threads:  # EOF: finish what is in flight, then exit
        t.join()


if __name__ == "__main__":
    main()
