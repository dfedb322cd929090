"""Resume across tasks (resumeTaskId) with the scripted stand-in for claude, in local mode and
in cloud mode: the job stores the CLI's transcript sealed next to the task's log and records
sessionId; a later task of the same credential gets it back in its own config directory, under
the project of its own working directory, and the CLI gets --resume; any other credential is a
403; a task that has not ended, or kept no session, is a 409.  (tests/test_e2e_sessions.py
does the same with the real CLI.)
"""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import http_request  # noqa: E402
from test_cloud import body as cloud_body, cloud  # noqa: E402,F401
from test_serve import body as local_body, parse_sse  # noqa: E402

TRANSCRIPT = '{"type":"user","message":{"role":"user","content":"remember the marker 5d2a"}}\n'


def run(srv, payload):
    st, _, data = http_request(srv, "POST", "/run", payload, timeout=60)
    assert st == 200, data
    frames = parse_sse(data.decode())
    assert frames[-1][0] == "done", frames[-3:]
    lines = [json.loads(d) for ev, _, d in frames if ev is None]
    return json.loads(frames[-1][2]), lines


class Mode:
    """One serve in local or cloud mode: .srv, .body(), .stored(name), .new_task(before)."""

    def __init__(self, srv, body, stored, names):
        self.srv, self.body, self.stored, self.names = srv, body, stored, names

    def tasks(self):
        return {n.split("/")[1] for n in self.names("sessions/") if n.endswith("/metadata.json")}

    def run(self, payload):
        before = self.tasks()
        done, lines = run(self.srv, payload)
        (new,) = self.tasks() - before
        return new, done, lines


@pytest.fixture(params=["local", "cloud"])
def mode(request, local_serve, cloud):
    if request.param == "local":
        srv = local_serve()

        def stored(name):
            p = srv.data / name
            return p.read_bytes() if p.is_file() else None

        def names(prefix):
            root = srv.data
            return [str(p.relative_to(root)) for p in root.rglob("*")
                    if p.is_file() and str(p.relative_to(root)).startswith(prefix)] if root.is_dir() else []
        return Mode(srv, local_body, stored, names)
    c = cloud()
    return Mode(c.serve(), cloud_body, c.raw, c.names)


def test_resume_restores_the_transcript_and_passes_resume(mode):
    t1, done, _ = mode.run(mode.body({"transcript": TRANSCRIPT}))
    assert done["status"] == "completed"
    meta = json.loads(mode.stored("sessions/%s/metadata.json" % t1))
    assert meta["sessionId"] == "fake-session" and meta["sessionTranscriptBytes"] == len(TRANSCRIPT), meta
    sealed = mode.stored("sessions/%s/transcript.enc" % t1)
    assert sealed.startswith(b'{"version":"v2-envelope"') and b"5d2a" not in sealed
    owner = json.loads(mode.stored("sessions/%s/owner.json" % t1))
    assert list(owner) == ["credentialHmac"] and len(owner["credentialHmac"]) == 64
    assert json.loads(mode.stored("sessions/%s/metadata.json" % t1)).get("resumedFrom") is None

    t2, done, lines = mode.run(mode.body({}, resumeTaskId=t1))
    assert done["status"] == "completed", done
    (res,) = [x for x in lines if x.get("type") == "resumed"]
    assert res["session_id"] == "fake-session" and res["transcript"] == TRANSCRIPT, res
    assert json.loads(mode.stored("sessions/%s/metadata.json" % t2))["resumedFrom"] == t1

    # the resumed session's transcript is kept again: the conversation goes on from task to task
    m2 = json.loads(mode.stored("sessions/%s/metadata.json" % t2))
    assert m2["sessionId"] == "fake-session" and m2["sessionTranscriptBytes"] == len(TRANSCRIPT)
    # a task whose CLI kept no transcript cannot be resumed
    t3, done, _ = mode.run(mode.body({}))
    assert "sessionId" not in json.loads(mode.stored("sessions/%s/metadata.json" % t3))
    assert mode.stored("sessions/%s/transcript.enc" % t3) is None
    st, _, data = http_request(mode.srv, "POST", "/run", mode.body({}, resumeTaskId=t3))
    assert st == 409, data
    assert json.loads(data)["error"] == ("resumeTaskId: task %s has no stored session to resume (its CLI never "
                                         "started, or its transcript could not be stored)" % t3)


def test_only_the_same_credential_may_resume(mode):
    t1, done, _ = mode.run(mode.body({"transcript": TRANSCRIPT}))
    other = dict(mode.body({}, resumeTaskId=t1), anthropicApiKey="sk-ant-another-holder-0000")
    st, ctype, data = http_request(mode.srv, "POST", "/run", other)
    assert st == 403 and ctype.startswith("application/json"), data
    assert json.loads(data)["error"] == (
        "resumeTaskId: task %s was started with another credential; only the holder of its anthropicApiKey or "
        "anthropicOAuthToken may resume it" % t1)
    st, _, data = http_request(mode.srv, "POST", "/run", mode.body({}, resumeTaskId="never-was-a-task"))
    assert st == 404 and json.loads(data)["error"] == "resumeTaskId: task never-was-a-task not found"
    assert mode.tasks() == {t1}, "refused requests stored nothing"


def test_a_task_still_running_cannot_be_resumed(local_serve):
    srv = local_serve()
    st, _, data = http_request(srv, "POST", "/run-async", local_body(
        {"lines": [{"type": "system", "subtype": "init", "session_id": "s"}], "hang_after": True},
        callbackUrl="https://example.invalid/hook", taskId="still-running"))
    assert st == 202, data
    st, _, data = http_request(srv, "POST", "/run", local_body({}, resumeTaskId="still-running"))
    assert st == 409 and json.loads(data)["error"] == \
        "resumeTaskId: task still-running has not ended yet; resume it once it has"
    assert http_request(srv, "POST", "/cancel/still-running")[0] == 200


@pytest.mark.parametrize("value,msg", [
    (7, "resumeTaskId must be a string"),
    ("../etc", "resumeTaskId must be a task id (alphanumeric, underscore, hyphen only)"),
    ("x" * 129, "resumeTaskId must be a task id (at most 128 characters)"),
])
def test_bad_resume_task_id_is_400(local_serve, value, msg):
    srv = local_serve()
    st, _, data = http_request(srv, "POST", "/run", local_body({}, resumeTaskId=value))
    assert st == 400 and json.loads(data)["error"] == msg, data
