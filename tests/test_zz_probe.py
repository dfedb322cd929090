import json, os, time
from test_e2e import (e2e, fake, claude_bin, body, SSE, request, task_ids, claude_pids, proc_stat,  # noqa
                      all_pids, wait_for)

def test_probe_bash_cancel(e2e):
    srv = e2e()
    srv.fake.load_script([{"tool_use": {"name": "Bash", "input": {"command": "python3 -c \"import time; time.sleep(277)\"", "description": "wait"}}},
                          "done"])
    sse = SSE(srv, "POST", "/run", body())
    it = iter(sse)
    next(it)
    for f in it:
        print(f[0], f[2][:600])
        if '"user"' in f[2]: break
    def sleeps():
        out = []
        for pid in all_pids():
            try:
                cmd = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
            except OSError:
                continue
            if b"time.sleep(277)" in b" ".join(cmd) and b"python" in cmd[0]:
                out.append((pid, proc_stat(pid), cmd))
        return out
    s = wait_for(sleeps, 20, "sleep")
    print("sleep procs", s)
    print("claude", [(p, proc_stat(p)) for p in claude_pids(srv)])
    (task,) = task_ids(srv)
    print(request(srv, "POST", "/cancel/%s" % task))
    for f in it:
        print(f[0], f[2][:100])
    time.sleep(2)
    print("after", sleeps())
    for pid, _, _ in sleeps():
        os.kill(pid, 9)
