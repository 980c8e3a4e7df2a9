"""Runs one runner binary and restarts it empty on request, for the API suite.

The black-box API tests start each test from an empty stack by POSTing to
ORDERLY_TEST_RESET_URL. Against a runner started from outside (the binary
taken out of the container image, scripts/image.sh) that reset is this:
stop the runner (SIGTERM: its clean shutdown), give it a new data directory,
start it again and answer once its /health does.

  python3 scripts/runner_supervisor.py BINARY RUNNER_PORT RESET_PORT WORK_DIR

The runner listens on 127.0.0.1:RUNNER_PORT with the settings in the
environment (ORDERLY_JWT_SECRET, queue timings...); this on
127.0.0.1:RESET_PORT (POST /reset). Its log: WORK_DIR/runner-N.log.
"""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

binary, runner_port, reset_port, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
state = {"process": None, "generation": 0}


def start():
    state["generation"] += 1
    generation = state["generation"]
    env = dict(os.environ, ORDERLY_ADDR=f"127.0.0.1:{runner_port}",
               ORDERLY_DATA_DIR=os.path.join(work, f"data-{generation}"))
    log = open(os.path.join(work, f"runner-{generation}.log"), "wb")
    state["process"] = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state["process"].poll() is not None:
            raise RuntimeError(f"the runner exited ({state['process'].returncode}); see runner-{generation}.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{runner_port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the runner did not answer /health within 30 s")


def stop():
    process = state["process"]
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Reset(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        if self.path != "/reset":
            self.send_error(404)
            return
        with lock:
            try:
                stop()
                start()
            except RuntimeError as error:
                self.send_error(500, str(error))
                return
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


# SIGTERM unwinds through the finally below, stopping the runner too.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
start()
server = http.server.ThreadingHTTPServer(("127.0.0.1", reset_port), Reset)
print(f"runner on 127.0.0.1:{runner_port}, reset on http://127.0.0.1:{reset_port}/reset", flush=True)
try:
    server.serve_forever()
finally:
    stop()
