"""Drive a command through a pseudo-terminal as a person would: wait for text, type a line.

Usage: python3 pty_drive.py PLAN.json -- COMMAND [ARGS...]
PLAN: [{"expect": "text to wait for", "send": "what to type (\\n to press Enter)", "timeout": 20}, ...]
A step without "expect" sends at once; one without "send" only waits. "\\u0003" is Ctrl-C,
"\\u0004" Ctrl-D. Prints everything the command wrote (ANSI codes as they are) and exits 0 when
every expectation was met and the command ended, 1 otherwise (saying which step failed).
"""

import json
import os
import pty
import select
import sys
import time


def main() -> int:
    plan_path, sep, *command = sys.argv[1:]
    assert sep == "--", "usage: pty_drive.py PLAN.json -- COMMAND [ARGS...]"
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen = b""
    pos = 0
    failed = None

    def read_until(needle: bytes, timeout: float) -> bool:
        """Wait for `needle` after what earlier steps matched."""
        nonlocal seen, pos
        deadline = time.monotonic() + timeout
        while True:
            found = seen.find(needle, pos)
            if found >= 0:
                pos = found + len(needle)
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                return False
            seen += chunk

    for i, step in enumerate(plan):
        expect = step.get("expect")
        if expect and not read_until(expect.encode(), float(step.get("timeout", 20))):
            failed = f"step {i}: did not see {expect!r}"
            break
        if "send" in step:
            os.write(fd, step["send"].encode())
    # let it finish
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code
            break
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
                seen += chunk
            except OSError:
                pass
    if status is None:
        os.kill(pid, 9)
        failed = failed or "the command did not end"
    sys.stdout.write(seen.decode("utf-8", "replace"))
    if failed:
        sys.stdout.write(f"\nPTY-DRIVE FAILED: {failed}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
