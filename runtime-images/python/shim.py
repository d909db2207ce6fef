"""Jiffy python runtime shim: loads the handler once, then serves invocations one at a time.

Protocol (see src/functions/protocol.ts): requests are JSON lines on stdin; replies are JSON lines
on a private duplicate of the original stdout, each prefixed with a per-instance tag. fd 1 itself is
pointed at stderr before user code loads, so prints (and child processes) cannot corrupt replies;
sys.stdout/sys.stderr are swapped for a per-invocation log buffer while a handler runs.
"""
import base64
import importlib.util
import io
import json
import os
import sys
import time
import traceback

TAG = ("\x1eJIFFY" + os.environ.get("JIFFY_NONCE", "") + " ").encode()
LOG_LIMIT = int(os.environ.get("JIFFY_LOG_LIMIT", "65536"))
ROOT = os.environ.get("JIFFY_TASK_ROOT", "/var/task")

_reply = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
_real_stderr = sys.__stderr__


class _Capture(io.TextIOBase):
    """Collects handler output up to LOG_LIMIT; counts the rest for the truncation note."""

    def __init__(self):
        self.parts, self.size = [], 0

    def writable(self):
        return True

    def write(self, s):
        if self.size < LOG_LIMIT:
            self.parts.append(s)
        self.size += len(s)
        return len(s)

    def text(self):
        t = "".join(self.parts)
        if self.size > LOG_LIMIT:
            t = t[:LOG_LIMIT] + "\n[jiffy: logs truncated, %d bytes written]\n" % self.size
        return t


def send(msg):
    data = TAG + json.dumps(msg, separators=(",", ":"), default=str).encode() + b"\n"
    view = memoryview(data)
    while view:
        n = _reply.write(view)
        view = view[n:]


def error_json(e):
    return {"name": type(e).__name__, "message": str(e), "stack": "".join(traceback.format_exception(e))}


def load_handler():
    spec = os.environ.get("JIFFY_HANDLER", "main.handler")
    file, _, name = spec.rpartition(".")
    path = os.path.join(ROOT, file if file.endswith(".py") else file + ".py")
    if not os.path.exists(path):
        raise FileNotFoundError("handler file %s not found in %s" % (file + ".py", ROOT))
    sys.path.insert(0, ROOT)
    mod_spec = importlib.util.spec_from_file_location(os.path.basename(file), path)
    mod = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_spec.name] = mod
    mod_spec.loader.exec_module(mod)
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise AttributeError("%s does not define a function named %s" % (path, name))
    return fn


class Context(dict):
    def get_remaining_time_in_millis(self):
        return max(0, int(self.get("deadlineMs", 0) - time.time() * 1000))


def invoke(handler, req):
    cap = _Capture()
    sys.stdout, sys.stderr = cap, cap
    event = req.get("event")
    if req.get("eventEncoding") == "base64":
        event = base64.b64decode(event)
    try:
        result = handler(event, Context(req.get("context") or {}))
        msg = {"ok": True, "result": result}
        if isinstance(result, (bytes, bytearray)):
            msg = {"ok": True, "result": base64.b64encode(result).decode(), "resultEncoding": "base64"}
    except Exception as e:  # the handler's failure is the invocation's result
        msg = {"ok": False, "error": error_json(e)}
    finally:
        sys.stdout, sys.stderr = _real_stderr, _real_stderr
    send(dict(msg, type="result", id=req.get("id"), logs=cap.text()))


def main():
    sys.stdout = _real_stderr
    try:
        handler = load_handler()
    except BaseException as e:
        send({"type": "init_error", "error": error_json(e)})
        return 1
    send({"type": "ready", "pid": os.getpid()})
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            _real_stderr.write("jiffy shim: bad request line: %s\n" % e)
            continue
        invoke(handler, req)
    return 0


if __name__ == "__main__":
    sys.exit(main())
