"""Cold start of each Lambda binary against a local Runtime API stub.

For each binary: start the process with the Lambda environment and time from
the start to its first `GET /2018-06-01/runtime/invocation/next` (its init:
runtime, logging, SDK clients, wiring), then stop it. The runs of all the
binaries are interleaved (round robin) so that machine noise spreads evenly,
and each is compared with the bare `lambda_runtime` "hello" built with the
same profile. Also reports each binary's size and its zip size (deflate, as
`sam package` zips it).

usage: aws_cold_start.py RUNS OUT.json NAME=PATH...   (the first pair is the baseline)
"""

import http.server
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import zipfile

first_next = {}
arrived = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            first_next.setdefault("at", time.perf_counter_ns())
            arrived.set()
            # Hold the long poll, as the real Runtime API does; the process
            # is stopped before any event is sent.
            time.sleep(5)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def lambda_env(port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ORDERLY_", "SSL_CERT"))}
    # Like Lambda's provided.al2023: one CA bundle file, no hashed directory
    # (this machine's /etc/ssl/certs holds ~300 files, which the SDK's TLS
    # setup would read one by one).
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(bundle):
        env["SSL_CERT_FILE"] = bundle
        env["SSL_CERT_DIR"] = "/nonexistent"
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_GROUP_NAME="/bench",
        AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_SESSION_TOKEN="bench",
        ORDERLY_LOG="warn",
        ORDERLY_JWT_SECRET_PARAMETER="/orderly/bench/jwt-secret",
    )
    for table in ("ORDERS", "INVENTORY", "NOTIFICATIONS", "ANALYTICS"):
        env[f"ORDERLY_TABLE_{table}"] = f"orderly-bench-{table.lower()}"
    for queue in ("ORDER_INTAKE", "INVENTORY", "NOTIFICATION", "ANALYTICS"):
        url = f"https://sqs.us-east-1.amazonaws.com/000000000000/orderly-bench-{queue.lower()}"
        env[f"ORDERLY_QUEUE_URL_{queue}"] = url + ".fifo"
        env[f"ORDERLY_DLQ_URL_{queue}"] = url + "-dlq.fifo"
    return env


def one_start(path: str, env: dict) -> float:
    first_next.clear()
    arrived.clear()
    started = time.perf_counter_ns()
    process = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not arrived.wait(timeout=10):
            raise RuntimeError(f"{path} never asked for an event")
        return (first_next["at"] - started) / 1e6
    finally:
        process.kill()
        process.wait()


def zipped(path: str) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "bootstrap")
    return buffer.tell()


def main() -> None:
    runs, out = int(sys.argv[1]), sys.argv[2]
    binaries = [arg.split("=", 1) for arg in sys.argv[3:]]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = lambda_env(server.server_address[1])
    times = {name: [] for name, _ in binaries}
    for name, path in binaries:  # warm the page cache once
        one_start(path, env)
    for _ in range(runs):
        for name, path in binaries:
            times[name].append(one_start(path, env))
    baseline = statistics.median(times[binaries[0][0]])
    report = []
    print(f"{'binary':<14} {'init p50 ms':>11} {'p90 ms':>8} {'x hello':>8} {'binary MB':>10} {'zip MB':>7}")
    for name, path in binaries:
        samples = sorted(times[name])
        p50 = statistics.median(samples)
        p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
        row = {
            "binary": name,
            "init_p50_ms": round(p50, 2),
            "init_p90_ms": round(p90, 2),
            "ratio_to_hello": round(p50 / baseline, 2),
            "binary_bytes": os.path.getsize(path),
            "zip_bytes": zipped(path),
            "runs": runs,
        }
        report.append(row)
        print(
            f"{name:<14} {p50:>11.2f} {p90:>8.2f} {row['ratio_to_hello']:>8.2f}"
            f" {row['binary_bytes'] / 1e6:>10.1f} {row['zip_bytes'] / 1e6:>7.1f}"
        )
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    server.shutdown()


if __name__ == "__main__":
    main()
